#!/usr/bin/env bash
# bench/freshfs.sh DIR: makes DIR the top of a new, empty ext4 file system
# on a loop device backed by DIR.img, beside it on the disk (what a disk
# row of bench/run.sh gives each tool as a fresh root); one already
# mounted there is unmounted and its loop device detached first.
#   bench/freshfs.sh -u DIR: only unmounts and detaches.
#
# Why not rm -rf and mkdir: ext4 does not give out again, for a minute
# or so, the inodes of files just deleted (ialloc.c, recently_deleted),
# and looks through them first, so creating 10,000 files right after
# deleting 10,000 costs every tool seconds of system time that a real
# master, provisioned once, never pays. A new file system has none.
# The loop device does direct I/O on its file, so that a sync in the
# file system is a write and a flush on the disk below, as without it.
set -euo pipefail
unmount_only=false
if [ "${1:-}" = -u ]; then
	unmount_only=true
	shift
fi
dir=$1
img=$dir.img
if mountpoint -q "$dir"; then
	dev=$(findmnt -n -o SOURCE --target "$dir")
	umount "$dir"
	case $dev in /dev/loop*) losetup -d "$dev" ;; esac
fi
if $unmount_only; then
	rm -f "$img"
	exit 0
fi
rm -rf --one-file-system "$dir" "$img"
mkdir -p "$dir"
truncate -s 1G "$img"
# Inode tables and journal written now, not by a kernel thread during
# the timed run.
mkfs.ext4 -q -F -N 65536 -E lazy_itable_init=0,lazy_journal_init=0 "$img"
dev=$(losetup --direct-io=on --find --show "$img")
mount "$dev" "$dir"
rmdir "$dir/lost+found"
