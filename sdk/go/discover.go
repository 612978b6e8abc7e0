package clawplane

import (
	"net"
	"os"
	"path/filepath"
	"strings"
)

// TokenFile is the file the gateway writes its generated token into, in its data dir.
const TokenFile = "gateway.token"

// TLSCertFile is where gateway.tls.autoGenerate writes the certificate, relative to the
// data dir.
const TLSCertFile = "tls/cert.pem"

// Discovered is what Discover found.
type Discovered struct {
	// URL is the gateway URL: the argument, else CLAWPLANE_URL, else DefaultURL.
	URL string
	// Token is the token to present ("" for none).
	Token string
	// TokenSource says where Token came from: "argument", "$CLAWPLANE_TOKEN",
	// "$CLAWPLANE_GATEWAY_TOKEN", "$OPENCLAW_GATEWAY_TOKEN", the token file's path, or "" when
	// none was found.
	TokenSource string
	// TLS are the options for an https:// URL (empty for http://).
	TLS TLSOptions
}

// DataDir is the local gateway's data directory: CLAWPLANE_DATA_DIR, else ~/.clawplane
// ("" when neither is known).
func DataDir() string {
	if d := strings.TrimSpace(os.Getenv("CLAWPLANE_DATA_DIR")); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" {
		return filepath.Join(home, ".clawplane")
	}
	return ""
}

// Discover fills in local defaults the way the other SDKs and the clawplane CLI do:
//
//   - URL: rawURL, else CLAWPLANE_URL, else DefaultURL.
//   - Token: token, else CLAWPLANE_TOKEN, else CLAWPLANE_GATEWAY_TOKEN, else
//     OPENCLAW_GATEWAY_TOKEN (a migrating user's environment), else — only for a
//     loopback URL (localhost, *.localhost, 127.0.0.0/8, ::1), so that a local secret is
//     never sent to a remote gateway — the local gateway's <DataDir>/gateway.token.
//   - TLS (https:// only): tlsOpts when set, else CLAWPLANE_TLS_FINGERPRINT, else
//     CLAWPLANE_TLS_CA, else for a loopback URL the local gateway's generated
//     <DataDir>/tls/cert.pem as the CA when it exists. For http:// the environment is
//     ignored and tlsOpts passed through (ConnectWith refuses them).
//
// Blank values count as absent.
func Discover(rawURL, token string, tlsOpts TLSOptions) Discovered {
	d := Discovered{URL: strings.TrimSpace(rawURL)}
	if d.URL == "" {
		d.URL = strings.TrimSpace(os.Getenv("CLAWPLANE_URL"))
	}
	if d.URL == "" {
		d.URL = DefaultURL
	}
	target, useTLS, err := parseURL(d.URL)
	loopback := err == nil && isLoopback(target)

	if t := strings.TrimSpace(token); t != "" {
		d.Token, d.TokenSource = t, "argument"
	} else {
		for _, k := range []string{"CLAWPLANE_TOKEN", "CLAWPLANE_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_TOKEN"} {
			if t := strings.TrimSpace(os.Getenv(k)); t != "" {
				d.Token, d.TokenSource = t, "$"+k
				break
			}
		}
	}
	dir := DataDir()
	if d.Token == "" && loopback && dir != "" {
		path := filepath.Join(dir, TokenFile)
		if b, err := os.ReadFile(path); err == nil {
			if t := strings.TrimSpace(string(b)); t != "" {
				d.Token, d.TokenSource = t, path
			}
		}
	}

	d.TLS = tlsOpts
	if useTLS && !tlsOpts.isSet() {
		if fp := strings.TrimSpace(os.Getenv("CLAWPLANE_TLS_FINGERPRINT")); fp != "" {
			d.TLS.Fingerprint = fp
		} else if ca := strings.TrimSpace(os.Getenv("CLAWPLANE_TLS_CA")); ca != "" {
			d.TLS.CAFile = ca
		} else if loopback && dir != "" {
			if cert := filepath.Join(dir, filepath.FromSlash(TLSCertFile)); fileExists(cert) {
				d.TLS.CAFile = cert
			}
		}
	}
	return d
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// isLoopback reports whether the dial target host:port is this machine.
func isLoopback(target string) bool {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return false
	}
	host = strings.ToLower(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
