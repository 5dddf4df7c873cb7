package host

import (
	"regexp"
	"strings"
)

// urlUserinfo matches the userinfo of a URL in free text: from "//" (after
// a scheme, or none) to the last "@" before the host's end, so that an
// "@" inside a password is taken too.
var urlUserinfo = regexp.MustCompile(`((?:[A-Za-z][A-Za-z0-9+.-]*:)?//)[^/?#\s"'<>]*@`)

// credentialName is a query parameter's name that says it holds a
// credential: access_token, api_key, password, sig, and the like.
const credentialName = `[a-z0-9_.-]*(?:token|secret|password|passwd|pwd|key|sig|signature|auth|credential)[a-z0-9_.-]*`

// urlSecretParam matches a query parameter named like a credential, with
// its value.
var urlSecretParam = regexp.MustCompile(`(?i)([?&]` + credentialName + `=)[^&#\s"'<>]*`)

// credentialParam matches a credential's name alone.
var credentialParam = regexp.MustCompile(`(?i)^` + credentialName + `$`)

// CredentialParam reports whether a URL's query parameter name says it
// holds a credential (access_token, api_key, password, sig), whose value
// RedactURLs hides.
func CredentialParam(name string) bool { return credentialParam.MatchString(name) }

// RedactURLs replaces the credentials of every URL in text, a message or
// a URL alone, by "xxxxx": user:password@ or token@ (an "@" in the
// password included, and the user name too, as a token may stand there),
// and the values of query parameters named like credentials
// (CredentialParam). It works on the text, so a URL that does not parse
// is redacted too. It is the one redaction of URLs: host's messages use
// it, and the engine's redaction of every output line.
func RedactURLs(text string) string {
	if strings.Contains(text, "@") {
		text = urlUserinfo.ReplaceAllString(text, "${1}xxxxx@")
	}
	if strings.Contains(text, "=") {
		text = urlSecretParam.ReplaceAllString(text, "${1}xxxxx")
	}
	return text
}
