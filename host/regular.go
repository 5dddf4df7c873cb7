package host

import (
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Bounds on the files kplay reads on the machine running it.
const (
	// SrcLimit bounds a file step's src: key material, configuration,
	// a binary such as a kubelet wrapper.
	SrcLimit = 256 << 20
	// PlaybookLimit bounds a playbook and each module it loads; master.star
	// and its lib/ are 40 KiB.
	PlaybookLimit = 16 << 20
	// VarsFileLimit bounds a --vars-file.
	VarsFileLimit = 1 << 20
)

// NotRegularError is ReadRegular's error for anything but a regular file
// or a directory (a directory is syscall.EISDIR).
type NotRegularError struct {
	Kind string // "a named pipe", "a device", "a socket"
}

func (e *NotRegularError) Error() string { return e.Kind + ", not a regular file" }

// FileSizeError is ReadRegular's error for a file larger than its bound.
type FileSizeError struct{ Limit int64 }

func (e *FileSizeError) Error() string {
	return "larger than " + byteSize(e.Limit) + ", the bound kplay reads"
}

// ReadRegular reads the regular file name, in root, or on the machine
// running kplay if root is nil, of at most limit bytes (no bound if
// limit <= 0). Anything but a regular file is refused before it is
// opened (opening a device can act: a watchdog arms, a tape rewinds) and
// again once opened (it may have been swapped), as *NotRegularError: a
// named pipe would block kplay for ever, and a device such as /dev/zero
// would fill its memory. A larger file is a *FileSizeError, found before
// it is read.
func ReadRegular(root *os.Root, name string, limit int64) ([]byte, error) {
	stat, open := os.Stat, func(name string, flag int) (*os.File, error) { return os.OpenFile(name, flag, 0) }
	if root != nil {
		stat, open = root.Stat, func(name string, flag int) (*os.File, error) { return root.OpenFile(name, flag, 0) }
	}
	if fi, err := stat(name); err != nil {
		return nil, err
	} else if err := checkRegular(fi, limit); err != nil {
		return nil, err
	}
	f, err := open(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkRegular(fi, limit); err != nil {
		return nil, err
	}
	var rd io.Reader = f
	if limit > 0 {
		rd = io.LimitReader(f, limit+1) // a file that grows as it is read
	}
	data := make([]byte, 0, fi.Size()+512) // as os.ReadFile: room to see the end
	for {
		n, err := rd.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if limit > 0 && int64(len(data)) > limit {
			return nil, &FileSizeError{Limit: limit}
		}
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// checkRegular accepts a regular file of at most limit bytes; a
// directory is EISDIR.
func checkRegular(fi fs.FileInfo, limit int64) error {
	switch {
	case fi.IsDir():
		return syscall.EISDIR
	case !fi.Mode().IsRegular():
		return &NotRegularError{Kind: Kind(fi.Mode())}
	case limit > 0 && fi.Size() > limit:
		return &FileSizeError{Limit: limit}
	}
	return nil
}
