package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.starlark.net/starlark"

	"github.com/kplay-dev/kplay/host"
)

// The secret rule. One rule decides what is sensitive, for every builtin;
// sensitive content never reaches a terminal, a log, JSON, an error or a
// file kplay keeps, and is shown only as its size and a keyed fingerprint.
// A value is sensitive when:
//
//   - names: a path, src, unit, key or URL path it is written to or read
//     from ends in "-key.pem" or ".key", or contains "secret" or "token"
//     (SensitiveName);
//   - content: it holds a PEM or OpenPGP private key, a kubeconfig's
//     credentials, a Kubernetes Secret, a shadow password hash or a URL
//     with a password (SensitiveContent), checked on what a step would
//     write and on what it replaces;
//   - mode: a file, unit, drop-in or manifest is given a mode closed to
//     group and others (SensitiveMode), or replaces a file whose mode is
//     (then its old content is never shown);
//   - flow: it contains the value of a var declared sensitive=True, or
//     one of the forms quoting gives it (Secrets). Such a value is also
//     replaced by "(sensitive)" in every step line, summary, progress
//     line, print() and error, whatever builtin or string operation
//     carried it.
//
// docs/security.md says what the rule promises and which tests hold it.
//
// A builtin's sensitive=True makes its step sensitive outright;
// sensitive=False turns off the name, content and mode rules for that
// step (a test key, a public CA named ca-key.pem), never the flow rule.

// Sensitivity is the sensitive= argument of a builtin: None (the rule
// decides), True or False. It implements starlark.Unpacker.
type Sensitivity int

// The values of Sensitivity.
const (
	SensitiveAuto Sensitivity = iota // sensitive=None: the rule decides
	SensitiveYes                     // sensitive=True
	SensitiveNo                      // sensitive=False: no name, content or mode rule
)

// Unpack implements starlark.Unpacker: None, True or False.
func (s *Sensitivity) Unpack(v starlark.Value) error {
	switch v := v.(type) {
	case starlark.NoneType:
		*s = SensitiveAuto
	case starlark.Bool:
		*s = SensitiveNo
		if v {
			*s = SensitiveYes
		}
	default:
		return fmt.Errorf("got %s, want bool", v.Type())
	}
	return nil
}

// Decide applies the name, content and mode rules that a builtin can
// apply when it is called: SensitiveYes if one matches and the setting is
// not SensitiveNo, else the setting as it was. The engine applies the
// content rule again to what Diff reads and writes, unless SensitiveNo.
func (s Sensitivity) Decide(names []string, content []byte, mode fs.FileMode, modeGiven bool) Sensitivity {
	if s != SensitiveAuto {
		return s
	}
	if slices.ContainsFunc(names, SensitiveName) || SensitiveContent(content) || (modeGiven && SensitiveMode(mode)) {
		return SensitiveYes
	}
	return SensitiveAuto
}

// SensitiveName reports whether a file name, unit name, key or URL path
// suggests key material: it ends in "-key.pem" or ".key", or contains
// "secret" or "token" (any case).
func SensitiveName(name string) bool {
	name = strings.ToLower(name)
	return strings.HasSuffix(name, "-key.pem") || strings.HasSuffix(name, ".key") ||
		strings.Contains(name, "secret") || strings.Contains(name, "token")
}

// sensitiveContent matches what SensitiveContent looks for, line by line.
var sensitiveContent = regexp.MustCompile(`(?m)` +
	// A PEM private key of any kind: RSA, EC, PKCS#8, encrypted, OpenSSH,
	// and OpenPGP's armour.
	`-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----` +
	// A kubeconfig's credentials (client-key-data, token, password, an
	// OIDC id-token, refresh-token or client-secret; an
	// EncryptionConfiguration's secret), in YAML (block or flow style) or
	// JSON (pretty or on one line), with a value on its line or, YAML's
	// way, indented on the next: the value is group 1, which
	// SensitiveContent checks.
	`|(?:^|[\s{,])["']?(?:client-key-data|token|password|id-token|refresh-token|client-secret|secret)["']?[ \t]*:[ \t]*(?:\r?\n[ \t]+)?((?:"[^"\n]*"|'[^'\n]*'|[^\s,}{\[\]"'][^\s,}]*))` +
	// A Kubernetes Secret, in YAML (block or flow style) or JSON.
	`|(?:^|[\s{,])["']?kind["']?[ \t]*:[ \t]*["']?Secret["']?[ \t]*(?:[,}#\r]|$)` +
	// A password hash of /etc/shadow: name:$id$salt$hash:
	`|^[a-z_][a-z0-9_.-]*:\$[0-9a-z]+\$[^:\s]+:` +
	// A URL with a password: scheme://user:password@host.
	`|[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:[^/\s@]+@`)

// emptyValues are the values of a credential field that hold none.
var emptyValues = []string{`""`, `''`, "null", "~", "true", "false", "yes", "no"}

// SensitiveContent reports whether data holds a PEM or OpenPGP private
// key; a kubeconfig's client-key-data, token, password, OIDC id-token,
// refresh-token or client-secret, or an EncryptionConfiguration's secret,
// with a value, in YAML or JSON; a Kubernetes Secret object; a password
// hash of /etc/shadow; or a URL with a password. It looks for these
// forms and no other: a secret in another format (an environment file's
// DB_PASSWORD=, a .netrc) needs sensitive=True or a sensitive var.
func SensitiveContent(data []byte) bool {
	// The words the pattern needs, found far faster than the pattern
	// runs: most content has none of them (a check of master.star ran the
	// pattern over every file for a quarter of its time).
	found := bytes.Contains(data, []byte("://")) && bytes.IndexByte(data, '@') >= 0
	for _, w := range sensitiveWords {
		found = found || bytes.Contains(data, w)
	}
	if !found {
		return false
	}
	for _, m := range sensitiveContent.FindAllSubmatchIndex(data, -1) {
		// A credential field counts only with a value: token: null,
		// password: "" and lock_passwd: true hold none.
		if m[2] < 0 {
			return true
		}
		// A key with nothing after it but the next key or a list (a
		// pod's secret: with its secretName: below) holds no value.
		value := string(data[m[2]:m[3]])
		if !slices.Contains(emptyValues, value) && !strings.HasSuffix(value, ":") && value != "-" {
			return true
		}
	}
	return false
}

// sensitiveWords are the words one of which sensitiveContent needs but
// for a URL's password.
var sensitiveWords = [][]byte{
	[]byte("PRIVATE KEY"), []byte("token"), []byte("password"), []byte("client-key-data"),
	[]byte("Secret"), []byte("secret"), []byte(":$"),
}

// SensitiveMode reports whether mode is closed to group and others
// (mode & 0o077 == 0): a file only its owner may read.
func SensitiveMode(mode fs.FileMode) bool { return mode&0o077 == 0 }

// Secrets are the values of the vars declared sensitive=True in one
// evaluation: the flow rule. Each value is also looked for in the forms
// that quoting and escaping give it on the way to an output: JSON (with
// and without HTML escapes), Go and Starlark string literals, YAML's
// single-quoted style, and URL encoding. A value shorter than
// minSubstring is looked for as a whole word only (not inside a run of
// letters and digits), so that a PIN "1234" or a letter "e" does not
// make every number or word that holds it sensitive. The zero value
// holds none.
type Secrets struct{ values []string }

// minSubstring is the length from which a sensitive value is found
// anywhere, even inside a word.
const minSubstring = 8

// add records a var's value (each item of a list) and its escaped forms,
// longest first, so that Redact replaces a value before any shorter one
// inside it.
func (s *Secrets) add(v starlark.Value) {
	items, err := Sequence(v) // a urls var is a list
	if err != nil {
		items = []starlark.Value{v}
	}
	for _, item := range items {
		text, ok := starlark.AsString(item)
		if !ok {
			text = item.String()
		}
		for _, form := range escapedForms(text) {
			if form != "" && !slices.Contains(s.values, form) {
				s.values = append(s.values, form)
			}
		}
	}
	slices.SortStableFunc(s.values, func(a, b string) int { return len(b) - len(a) })
}

// escapedForms returns text and the forms it takes inside a quoted string
// of the formats kplay and servers write.
func escapedForms(text string) []string {
	inner := func(quoted string) string {
		if len(quoted) >= 2 {
			return quoted[1 : len(quoted)-1]
		}
		return quoted
	}
	forms := []string{text}
	if trimmed := strings.TrimSpace(text); trimmed != text {
		forms = append(forms, escapedForms(trimmed)...) // a value from a vars file's "|" block ends in "\n"
	}
	if b, err := json.Marshal(text); err == nil {
		forms = append(forms, inner(string(b)))
	}
	var noHTML bytes.Buffer
	enc := json.NewEncoder(&noHTML)
	enc.SetEscapeHTML(false)
	if enc.Encode(text) == nil {
		forms = append(forms, inner(strings.TrimSuffix(noHTML.String(), "\n")))
	}
	forms = append(forms,
		inner(strconv.Quote(text)),
		inner(strconv.QuoteToASCII(text)),
		inner(starlark.String(text).String()),
		strings.ReplaceAll(text, "'", "''"),
		url.QueryEscape(text),
		url.PathEscape(text),
	)
	return forms
}

// In reports whether data contains a sensitive var's value.
func (s *Secrets) In(data []byte) bool {
	if s == nil {
		return false
	}
	text := string(data)
	return slices.ContainsFunc(s.values, func(v string) bool { return indexValue(text, v, 0) >= 0 })
}

// Redact returns text with every sensitive var's value replaced by
// "(sensitive)" and the credentials of every URL by "xxxxx" (see
// host.RedactURLs).
func (s *Secrets) Redact(text string) string {
	if s != nil {
		for _, v := range s.values {
			text = replaceValue(text, v, "(sensitive)")
		}
	}
	return host.RedactURLs(text)
}

// indexValue is the index of the first occurrence of v in text at or
// after from, as Secrets looks for it (a short v as a whole word only),
// or -1.
func indexValue(text, v string, from int) int {
	for from <= len(text) {
		i := strings.Index(text[from:], v)
		if i < 0 {
			return -1
		}
		i += from
		if len(v) >= minSubstring || (!wordBefore(text, i) && !wordByte(text, i+len(v))) {
			return i
		}
		from = i + 1
	}
	return -1
}

// wordBefore reports whether a word goes on before text[i]: a letter or
// digit there, unless it ends an escape of a quoted string (\n, \x1b,
// \u2028, \U0001f600, \0).
func wordBefore(text string, i int) bool {
	if !wordByte(text, i-1) {
		return false
	}
	for k := 2; k <= 10 && i-k >= 0; k++ {
		if text[i-k] == '\\' {
			return !quoteEscape.MatchString(text[i-k+1 : i])
		}
	}
	return true
}

// quoteEscape matches what follows the backslash of an escape in Go's,
// Starlark's and JSON's quoted strings.
var quoteEscape = regexp.MustCompile(`^(?:[abfnrtv]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3})$`)

// wordByte reports whether text[i] is a letter or digit; out of range is
// not.
func wordByte(text string, i int) bool {
	if i < 0 || i >= len(text) {
		return false
	}
	c := text[i]
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// replaceValue replaces each occurrence of v in text that indexValue
// finds by repl.
func replaceValue(text, v, repl string) string {
	var b strings.Builder
	from := 0
	for {
		i := indexValue(text, v, from)
		if i < 0 {
			break
		}
		b.WriteString(text[from:i])
		b.WriteString(repl)
		from = i + len(v)
	}
	if from == 0 {
		return text
	}
	b.WriteString(text[from:])
	return b.String()
}

// redactedError is an error whose message went through Secrets.Redact;
// errors.Is and errors.As still see the error it wraps.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactError returns err with its message redacted, or err itself if
// nothing in it was sensitive.
func (s *Secrets) redactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := s.Redact(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

// FingerprintKeyFile holds the key of the fingerprints that stand for
// sensitive content in kplay's output: 32 random bytes, mode 0600, made by
// the first run on a root. A fingerprint tells whether two runs wrote the
// same secret, or whether a check and a run agree, without letting anyone
// who lacks the key (which only root can read) guess a short secret by
// trying every value.
const FingerprintKeyFile = StateDir + "/fingerprint.key"

// fingerprintKeySize is the size of the key in FingerprintKeyFile, in
// bytes; a key of another size is made anew.
const fingerprintKeySize = 32

// fingerprint is the first 8 bytes of HMAC-SHA256(key, data) in hex, or
// "" without a key.
func fingerprint(key, data []byte) string {
	if len(key) == 0 {
		return ""
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(data)
	return hex.EncodeToString(mac.Sum(nil)[:8])
}

// secretsKey is the context key of the plan's Secrets during Apply.
type secretsKey struct{}

// SecretIn reports whether data holds the value of a var declared
// sensitive=True in the plan that Apply is applying with ctx: the flow
// rule, for steps that decide a file's mode when they are diffed (the
// content of src=).
func SecretIn(ctx context.Context, data []byte) bool {
	s, _ := ctx.Value(secretsKey{}).(*Secrets)
	return s.In(data)
}

// ContainsSecret reports whether data, about to become a step's content,
// holds the value of a var declared sensitive=True in the evaluation
// running on thread: the flow rule, for builtins that decide a file's
// default mode by it.
func ContainsSecret(thread *starlark.Thread, data []byte) bool {
	e, err := evaluationOf(thread)
	return err == nil && e.plan.Secrets.In(data)
}
