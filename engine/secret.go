package engine

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"go.starlark.net/starlark"
)

// The secret rule. One rule decides what is sensitive, for every builtin;
// sensitive content never reaches a terminal, a log, JSON, an error or a
// file kplay keeps, and is shown only as its size and a keyed fingerprint.
// A value is sensitive when:
//
//   - names: a path, src, unit, key or URL path it is written to or read
//     from ends in "-key.pem" or ".key", or contains "secret" or "token"
//     (SensitiveName);
//   - content: it holds a PEM private key, a kubeconfig's credentials
//     (client-key-data, token, password) or a Kubernetes Secret
//     (SensitiveContent), checked on what a step would write and on what
//     it replaces;
//   - mode: a file, unit, drop-in or manifest is given a mode closed to
//     group and others (SensitiveMode);
//   - flow: it contains the value of a var declared sensitive=True. Such
//     a value is also replaced by "(sensitive)" in every step line,
//     summary and error, whatever builtin or string operation carried it.
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
	// A PEM private key of any kind: RSA, EC, PKCS#8, encrypted, OpenSSH.
	`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----` +
	// A kubeconfig's credentials, in YAML or JSON.
	`|^\s*"?(client-key-data|token|password)"?\s*:\s*\S` +
	// A Kubernetes Secret, in YAML or JSON.
	`|^\s*"?kind"?\s*:\s*"?Secret"?\s*,?\s*$` +
	`|"kind"\s*:\s*"Secret"`)

// SensitiveContent reports whether data holds a PEM private key, a
// kubeconfig's client-key-data, token or password, or a Kubernetes
// Secret object.
func SensitiveContent(data []byte) bool {
	return len(data) > 0 && sensitiveContent.Match(data)
}

// SensitiveMode reports whether mode is closed to group and others
// (mode & 0o077 == 0): a file only its owner may read.
func SensitiveMode(mode fs.FileMode) bool { return mode&0o077 == 0 }

// Secrets are the values of the vars declared sensitive=True in one
// evaluation: the flow rule. The zero value holds none.
type Secrets struct{ values []string }

// add records a var's value (each item of a list), longest first, so
// that Redact replaces a value before any shorter one inside it.
func (s *Secrets) add(v starlark.Value) {
	var items []starlark.Value
	if l, ok := v.(*starlark.List); ok {
		for i := range l.Len() {
			items = append(items, l.Index(i))
		}
	} else {
		items = []starlark.Value{v}
	}
	for _, item := range items {
		text, ok := starlark.AsString(item)
		if !ok {
			text = item.String()
		}
		if text != "" && !slices.Contains(s.values, text) {
			s.values = append(s.values, text)
		}
	}
	slices.SortStableFunc(s.values, func(a, b string) int { return len(b) - len(a) })
}

// In reports whether data contains a sensitive var's value.
func (s *Secrets) In(data []byte) bool {
	if s == nil {
		return false
	}
	return slices.ContainsFunc(s.values, func(v string) bool { return bytes.Contains(data, []byte(v)) })
}

// Redact returns text with every sensitive var's value replaced by
// "(sensitive)" and the user:password@ of every URL by "xxxxx@".
func (s *Secrets) Redact(text string) string {
	if s != nil {
		for _, v := range s.values {
			text = strings.ReplaceAll(text, v, "(sensitive)")
		}
	}
	return RedactURLs(text)
}

// urlUserinfo matches the userinfo of a URL in free text.
var urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@`)

// RedactURLs replaces the credentials (user:password@ or token@) of every
// URL in text by "xxxxx@".
func RedactURLs(text string) string {
	if !strings.Contains(text, "@") {
		return text
	}
	return urlUserinfo.ReplaceAllString(text, "${1}xxxxx@")
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

// ContainsSecret reports whether data, about to become a step's content,
// holds the value of a var declared sensitive=True in the evaluation
// running on thread: the flow rule, for builtins that decide a file's
// default mode by it.
func ContainsSecret(thread *starlark.Thread, data []byte) bool {
	e, err := evaluationOf(thread)
	return err == nil && e.plan.Secrets.In(data)
}
