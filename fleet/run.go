package fleet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/kplay-dev/kplay/ui"
)

// Outcome is how a host's part of a fleet run ended.
type Outcome int

const (
	// NotRun: kplay did not start the host (an earlier failure passed
	// --max-fail, or an interrupt).
	NotRun Outcome = iota
	// OK: the check or run finished; a check found nothing to change.
	OK
	// Changes: a check found changes (exit code 2 on the host).
	Changes
	// Failed: the host ran kplay, and it failed (a step, the vars, the
	// lock) or ended without its document.
	Failed
	// Unreachable: kplay could not connect or log in; the host ran
	// nothing.
	Unreachable
)

func (o Outcome) String() string {
	return [...]string{"not run", "ok", "changes", "failed", "unreachable"}[o]
}

// Timing splits a host's wall-clock time: SSH setup (TCP, handshake,
// login, the session and its shell up to the bootstrap line), sending
// the binary (when the host lacks it) and the bundle, and the rest of the
// remote kplay's run once its input was sent.
type Timing struct {
	Dial, Transfer, Remote time.Duration
}

// Result is one host's part of a fleet run.
type Result struct {
	Host    *Host
	Outcome Outcome
	// Doc is the host's JSON document (as `kplay check|run --output json`
	// prints it); nil when the host sent none.
	Doc *ui.Document
	// Err says why the host failed or was unreachable.
	Err error
	// ExitCode is the remote kplay's exit status; -1 when it did not run
	// or ended without one.
	ExitCode int
	Timing   Timing
	// BinarySent says kplay was sent: the host did not have this binary
	// in its cache.
	BinarySent bool
}

// Options are how a fleet run goes.
type Options struct {
	// Forks is how many hosts run at once; 0 means DefaultForks.
	Forks int
	// Serial is the size of each batch: the hosts of a batch all finish
	// before the next batch starts. 0 means one batch of every host.
	Serial Count
	// MaxFail is how many hosts may fail or be unreachable before kplay
	// starts no more; hosts already started finish. nil never stops.
	MaxFail *Count
	// Dial is how to connect.
	Dial DialOptions
	// Binary is the kplay executable to run on the hosts; a host that
	// has it in its cache already is not sent it (see remoteScript).
	Binary []byte
	// Bundle writes a host's bundle (WriteBundle).
	Bundle func(w io.Writer, h *Host) error
	// Stderr receives each line the remote kplay writes to its stderr
	// (progress, waits, warnings), as it comes.
	Stderr func(h *Host, line string)
	// Done is told each host's result as it finishes.
	Done func(Result)
}

// DefaultForks is how many hosts run at once unless --forks says.
const DefaultForks = 5

// Count is a number of hosts, or a percentage of them (--serial 30%).
type Count struct {
	N       int
	Percent bool
}

// ParseCount reads N or N%.
func ParseCount(s string) (Count, error) {
	text, pct := strings.CutSuffix(s, "%")
	n, err := strconv.Atoi(text)
	if err != nil || n < 0 || pct && n > 100 {
		return Count{}, errors.New("want a number of hosts such as 1, or a percentage such as 30%")
	}
	return Count{N: n, Percent: pct}, nil
}

func (c Count) String() string {
	if c.Percent {
		return strconv.Itoa(c.N) + "%"
	}
	return strconv.Itoa(c.N)
}

// Of is c of total hosts; a percentage rounds down, but a batch holds at
// least one host.
func (c Count) Of(total int) int {
	if !c.Percent {
		return c.N
	}
	return total * c.N / 100
}

// Run runs the job on every host: in batches of opts.Serial, at most
// opts.Forks at once, stopping (before starting another host) when more
// than opts.MaxFail hosts failed or were unreachable, or ctx ends. The
// results keep the order of hosts.
func Run(ctx context.Context, hosts []*Host, opts Options) []Result {
	results := make([]Result, len(hosts))
	for i, h := range hosts {
		results[i] = Result{Host: h, ExitCode: -1}
	}
	forks := opts.Forks
	if forks <= 0 {
		forks = DefaultForks
	}
	batch := len(hosts)
	if opts.Serial.N > 0 {
		batch = max(1, opts.Serial.Of(len(hosts)))
	}
	maxFail := -1
	if opts.MaxFail != nil {
		maxFail = opts.MaxFail.Of(len(hosts))
	}
	bin := sha256.Sum256(opts.Binary)
	sum := hex.EncodeToString(bin[:])
	var mu sync.Mutex
	failures := 0
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ctx.Err() != nil || maxFail >= 0 && failures > maxFail
	}
	for start := 0; start < len(hosts) && !stopped(); start += batch {
		end := min(start+batch, len(hosts))
		sem := make(chan struct{}, forks)
		var wg sync.WaitGroup
		for i := start; i < end; i++ {
			sem <- struct{}{}
			if stopped() {
				<-sem
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				r := runHost(ctx, hosts[i], opts, sum)
				mu.Lock()
				results[i] = r
				if r.Outcome == Failed || r.Outcome == Unreachable {
					failures++
				}
				mu.Unlock()
				if opts.Done != nil {
					opts.Done(r)
				}
			}()
		}
		wg.Wait()
	}
	return results
}

// remoteScript is the one command kplay runs on a host. It makes a
// private directory for the bundle, then looks for the binary (size
// bytes, SHA-256 sum) in the login user's cache,
// $HOME/.cache/kplay/bin/<sum>/kplay, trusted only where the user owns
// the directory, no one else may write to it, and the file's SHA-256 is
// sum: checked once, when the file is newer than its "ok" mark (a copy
// written since it was checked), not at every run (20 MB cost 180 ms to
// hash on our test machine); a cached binary that cannot be started (126,
// 127) is removed, so that the next run sends it again. It says on stdout, on a line of its own (a newline first,
// after whatever the shell's start-up files printed), whether it has it
// (bootstrapHave) or needs it (bootstrapNeed). Needed,
// it takes exactly size bytes of stdin (dd with iflag=fullblock reads no
// byte past them, where head -c may), checks their sum, keeps a copy in
// the cache (renamed into place, so that a concurrent run never sees
// half of it; a copy that fails, for want of space, leaves nothing; the
// copies of other versions unused for an hour go) and runs it. The file
// keeps the name kplay: a test binary standing in for kplay knows by its
// name what to be. The agent then reads the bundle
// from stdin, and the end of stdin later as its stop (see runHost); the
// script removes the private directory whatever the agent did. 125 says
// the script itself failed.
func remoteScript(size int, sum string) string {
	return strings.NewReplacer("SIZE", strconv.Itoa(size), "SUM", sum, "HAVE", bootstrapHave, "NEED", bootstrapNeed).Replace(
		`umask 077; d=$(mktemp -d "${TMPDIR:-/tmp}/kplay.XXXXXXXX") || exit 125; ` +
			`c=; if [ -n "$HOME" ] && mkdir -p "$HOME/.cache/kplay/bin" 2>/dev/null && [ -O "$HOME/.cache/kplay/bin" ] && [ -z "$(find "$HOME/.cache/kplay/bin" -maxdepth 0 -perm /022)" ]; then c=$HOME/.cache/kplay/bin; fi; ` +
			`b=$c/SUM/kplay; ` +
			`if [ -n "$c" ] && [ -d "$c/SUM" ] && [ -O "$c/SUM" ] && [ -f "$b" ] && [ -O "$b" ] && [ -x "$b" ] && [ "$(wc -c < "$b")" -eq SIZE ] && ` +
			`{ { [ -f "$c/SUM/ok" ] && [ ! "$b" -nt "$c/SUM/ok" ]; } || { echo "SUM  $b" | sha256sum -c --status 2>/dev/null && touch "$c/SUM/ok"; }; }; then ` +
			`touch -c "$c/SUM"; cached=1; printf '\nHAVE\n'; ` +
			`else cached=; printf '\nNEED\n'; b=$d/kplay; ` +
			`dd of="$b" bs=SIZE count=1 iflag=fullblock status=none && [ "$(wc -c < "$b")" -eq SIZE ] && echo "SUM  $b" | sha256sum -c --status && chmod 0700 "$b" || { rm -rf "$d"; exit 125; }; ` +
			`if [ -n "$c" ]; then [ -d "$c/SUM" ] || rm -f "$c/SUM"; t=$c/SUM/.kplay.$$; ` +
			`if mkdir -p "$c/SUM" 2>/dev/null && cp "$b" "$t" 2>/dev/null && mv -f "$t" "$c/SUM/kplay" && touch "$c/SUM/ok"; then find "$c" -mindepth 1 -maxdepth 1 -type d ! -name SUM -mmin +60 -exec rm -rf {} + 2>/dev/null; else rm -f "$t"; fi; fi; fi; ` +
			`"$b" agent "$d"; s=$?; if [ -n "$cached" ] && { [ $s -eq 126 ] || [ $s -eq 127 ]; }; then rm -rf "$c/SUM"; fi; rm -rf "$d"; exit $s`)
}

// The line remoteScript prints before it reads stdin: whether the host
// has the binary already, or needs it sent.
const (
	bootstrapHave = "kplay-bootstrap: have"
	bootstrapNeed = "kplay-bootstrap: need"
)

// bootstrapLimit bounds what a host's shell start-up files may print
// before the bootstrap line.
const bootstrapLimit = 64 << 10

// readBootstrap reads stdout up to the bootstrap line: whether to send
// the binary. Lines before it (shell start-up noise) are skipped; at
// most bootstrapLimit bytes of them are read, a buffer's worth at a time.
func readBootstrap(r *bufio.Reader) (need bool, err error) {
	read := 0
	for read < bootstrapLimit {
		line, err := r.ReadSlice('\n')
		read += len(line)
		switch strings.TrimRight(string(line), "\r\n") {
		case bootstrapHave:
			return false, nil
		case bootstrapNeed:
			return true, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return false, errors.New("the host's shell ended before kplay started")
		}
	}
	return false, fmt.Errorf("no bootstrap line in the first %d bytes the host printed", bootstrapLimit)
}

// readLines calls line with each line of r, cut at limit bytes (the rest
// of a longer line is dropped), until r ends.
func readLines(r io.Reader, limit int, line func(string)) {
	br := bufio.NewReaderSize(r, limit)
	for {
		b, err := br.ReadSlice('\n')
		if len(b) > 0 {
			line(strings.TrimRight(string(b), "\r\n"))
		}
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n') // the rest of a long line
		}
		if err != nil {
			return
		}
	}
}

// docLimit bounds the document read back from a host: every step with
// its diff (the document of master.star is about 60 KB).
const docLimit = 64 << 20

// stderrLimit bounds all a host may write on stderr: progress lines,
// warnings and errors.
const stderrLimit = 16 << 20

// stopGrace is how long a host has to stop once kplay is interrupted:
// the remote kplay stops between steps, and steps that wait (wait_http,
// a systemd job) stop waiting.
const stopGrace = 30 * time.Second

// stderrLineLimit bounds one stderr line passed on; longer is cut.
const stderrLineLimit = 64 << 10

// bootstrapTimeout bounds the time from the session's start to the
// bootstrap line: the host's shell start-up and the script's checks.
const bootstrapTimeout = 2 * time.Minute

// Keepalives: a host that does not answer one within keepaliveTimeout
// is cut off, so that a network split cannot hold a run forever.
const (
	keepaliveInterval = 15 * time.Second
	keepaliveTimeout  = 45 * time.Second
)

// keepalive sends OpenSSH keepalive requests on client every
// keepaliveInterval until stopped; a request unanswered for
// keepaliveTimeout calls abort.
func keepalive(client *ssh.Client, abort func(error)) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(keepaliveInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			answered := make(chan struct{})
			go func() {
				_, _, _ = client.SendRequest("keepalive@openssh.com", true, nil)
				close(answered)
			}()
			select {
			case <-answered:
			case <-done:
				return
			case <-time.After(keepaliveTimeout):
				abort(fmt.Errorf("the host did not answer for %s: disconnected", keepaliveTimeout))
				return
			}
		}
	}()
	return func() { close(done) }
}

func runHost(ctx context.Context, h *Host, opts Options, sum string) Result {
	r := Result{Host: h, ExitCode: -1}
	t0 := time.Now()
	client, err := Dial(ctx, h, opts.Dial)
	r.Timing.Dial = time.Since(t0)
	if err != nil {
		r.Outcome, r.Err = Unreachable, err
		if ctx.Err() != nil {
			r.Outcome = NotRun
		}
		return r
	}
	defer client.Close()
	fail := func(err error) Result {
		r.Outcome, r.Err = Failed, fmt.Errorf("%s: %w", h.Name, err)
		return r
	}
	sess, err := client.NewSession()
	if err != nil {
		return fail(err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return fail(err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return fail(err)
	}
	stderr, err := sess.StderrPipe()
	if err != nil {
		return fail(err)
	}
	if err := sess.Start(remoteScript(len(opts.Binary), sum)); err != nil {
		return fail(err)
	}
	// abort ends the connection at once, whatever the host does: a host
	// that sends more than a kplay would, that does not stop when asked,
	// or that no longer answers.
	var abortOnce sync.Once
	var aborted error
	abort := func(err error) {
		abortOnce.Do(func() {
			aborted = err
			_ = client.Close()
		})
	}
	// Until the host has its input, an interrupt cuts it off: it may not
	// read (a full SSH window blocks the write), or never print its
	// bootstrap line. So does a shell that takes bootstrapTimeout to start.
	cutOff := context.AfterFunc(ctx, func() { abort(errors.New("interrupted before kplay started there")) })
	slow := time.AfterFunc(bootstrapTimeout, func() {
		abort(fmt.Errorf("kplay had not started there after %s (a login shell that waits?)", bootstrapTimeout))
	})
	stopKeepalive := keepalive(client, abort)
	defer stopKeepalive()

	var out bytes.Buffer
	var tail []string // the last stderr lines, for a failure's message
	var readers sync.WaitGroup
	readers.Add(2)
	// stderr is read from the start: a shell that writes much there
	// before the bootstrap line would otherwise fill the channel's window
	// and never print it.
	go func() {
		defer readers.Done()
		readLines(io.LimitReader(stderr, stderrLimit+1), stderrLineLimit, func(line string) {
			if tail = append(tail, line); len(tail) > 20 {
				tail = tail[1:]
			}
			if opts.Stderr != nil {
				opts.Stderr(h, line)
			}
		})
		if n, _ := io.Copy(io.Discard, stderr); n > 0 {
			abort(fmt.Errorf("the host sent more than %d MiB on stderr", stderrLimit>>20))
		}
	}()
	br := bufio.NewReaderSize(stdout, 64<<10)
	need, berr := readBootstrap(br)
	slow.Stop()
	r.Timing.Dial = time.Since(t0)
	go func() {
		defer readers.Done()
		if n, _ := io.Copy(&out, io.LimitReader(br, docLimit+1)); n > docLimit {
			out.Truncate(docLimit)
			abort(fmt.Errorf("the host sent more than %d MiB on stdout, more than any kplay document", docLimit>>20))
		}
	}()

	t1 := time.Now()
	werr := func() error {
		if berr != nil {
			return berr
		}
		if need {
			r.BinarySent = true
			if _, err := stdin.Write(opts.Binary); err != nil {
				return err
			}
		}
		return opts.Bundle(stdin, h)
	}()
	cutOff()
	if werr != nil {
		// The script ended, printed too much, or waits for input that
		// will not come: end its input.
		_ = stdin.Close()
	}
	r.Timing.Transfer = time.Since(t1)
	t2 := time.Now()
	// stdin stays open while the host works: its end, when kplay is
	// interrupted here (or the connection is lost), stops the remote
	// kplay as a signal would on its own machine (sshd does not pass
	// signals to root's sessions). A host that has not ended
	// stopGrace later is cut off.
	done := make(chan error, 1)
	go func() {
		readers.Wait()
		done <- sess.Wait()
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = stdin.Close()
		select {
		case err = <-done:
		case <-time.After(stopGrace):
			abort(fmt.Errorf("did not stop within %s of the interrupt: disconnected", stopGrace))
			err = <-done
		}
	}
	_ = stdin.Close()
	r.Timing.Remote = time.Since(t2)
	if aborted != nil {
		return fail(aborted)
	}

	var exit *ssh.ExitError
	switch {
	case err == nil:
		r.ExitCode = 0
	case errors.As(err, &exit):
		r.ExitCode = exit.ExitStatus()
	}
	doc, derr := ParseDocument(out.Bytes())
	r.Doc = doc
	switch {
	case r.ExitCode == 0 && doc != nil:
		r.Outcome = OK
	case r.ExitCode == 2 && doc != nil:
		r.Outcome = Changes
	case doc != nil && doc.Error != "":
		return fail(errors.New(doc.Error))
	case r.ExitCode == 125:
		return fail(fmt.Errorf("could not start kplay there (it needs a private directory in $TMPDIR or /tmp, GNU dd and sha256sum; the binary must arrive whole): %s", lastLines(tail)))
	case werr != nil:
		return fail(fmt.Errorf("sending kplay and the bundle: %v; %s", werr, lastLines(tail)))
	case derr != nil:
		return fail(fmt.Errorf("%v (exit status %d): stdout began %q; stderr: %s", derr, r.ExitCode, firstBytes(out.Bytes(), 200), lastLines(tail)))
	default:
		return fail(fmt.Errorf("kplay ended with exit status %d: %s", r.ExitCode, lastLines(tail)))
	}
	return r
}

// firstBytes is the start of b, at most n bytes, for a message.
func firstBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func lastLines(lines []string) string {
	if len(lines) == 0 {
		return "(nothing on stderr)"
	}
	return strings.Join(lines, "; ")
}

// ParseDocument finds the JSON document of `kplay check|run --output
// json` in out: a host's shell start-up files may print lines before it,
// even one that is "{", so it is the first line "{" from which a whole
// document with its command decodes, through the end.
func ParseDocument(out []byte) (*ui.Document, error) {
	var last error = errors.New("kplay sent no JSON document")
	for at := 0; at < len(out); {
		if bytes.HasPrefix(out[at:], []byte("{\n")) {
			doc := &ui.Document{}
			err := json.NewDecoder(bytes.NewReader(out[at:])).Decode(doc)
			if err == nil && doc.Command != "" {
				return doc, nil
			}
			if err != nil {
				last = fmt.Errorf("kplay's JSON document: %v", err)
			}
		}
		i := bytes.IndexByte(out[at:], '\n')
		if i < 0 {
			break
		}
		at += i + 1
	}
	return nil, last
}
