package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dialgate/dialgate/auth"
	"github.com/dialgate/dialgate/entryfile"
	"github.com/dialgate/dialgate/firewall"
	"github.com/dialgate/dialgate/sshpeer"
	"github.com/dialgate/dialgate/store"
)

// ErrNotRunning means nothing answers on the LocalAPI socket.
var ErrNotRunning = errors.New("the dialgate daemon is not running")

// Client talks to the daemon's LocalAPI.
type Client struct {
	socket string
	http   *http.Client
	// SSH is the SSH session the command runs in, sent so the daemon can
	// refuse a change that would cut it off; see SSHFromEnv.
	SSH netip.AddrPort
	// Force overrides that guard.
	Force bool
	// SSHUnknown, when set, says that the command runs in an SSH session
	// whose address could not be found (sshpeer.Session.Lost), and why:
	// the guard cannot protect it. It is sent with every request so the
	// daemon's audit records say so, and Warn hears it before the first
	// change.
	SSHUnknown string
	Warn       io.Writer
	warned     sync.Once
}

// NewClient returns a client for the socket at path.
func NewClient(socket string) *Client {
	return &Client{
		socket: socket,
		http: &http.Client{
			Timeout: 2 * time.Minute,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", socket)
				},
			},
		},
	}
}

// SSHFromEnv reads the current SSH session from SSH_CONNECTION
// ("client_ip client_port server_ip server_port") or, failing that,
// SSH_CLIENT ("client_ip client_port server_port"). The CLI uses
// sshpeer.Find, which also sees through sudo.
func SSHFromEnv(getenv func(string) string) netip.AddrPort {
	return sshpeer.FromEnv(getenv)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://dialgate"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.SSH.IsValid() {
		req.Header.Set(HeaderSSH, fmt.Sprintf("%s %d", c.SSH.Addr(), c.SSH.Port()))
	}
	if c.Force {
		req.Header.Set(HeaderForce, "1")
	}
	if c.SSHUnknown != "" {
		req.Header.Set(HeaderSSHUnknown, HeaderSafe(c.SSHUnknown))
		if method != http.MethodGet && c.Warn != nil {
			c.warned.Do(func() {
				fmt.Fprintf(c.Warn, "warning: %s; the SSH lockout guard is off, a change may cut this session off (sudo --preserve-env=SSH_CONNECTION keeps it on)\n", c.SSHUnknown)
			})
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w (nothing answers on %s): start it with `systemctl start dialgate` or `dialgate serve`", ErrNotRunning, c.socket)
		}
		return fmt.Errorf("localapi: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("localapi: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp.StatusCode, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("localapi: bad answer: %w", err)
		}
	}
	return nil
}

// Status returns the firewall and store state.
func (c *Client) Status(ctx context.Context) (st StatusInfo, err error) {
	return st, c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
}

// Accounts lists accounts.
func (c *Client) Accounts(ctx context.Context) (as []AccountInfo, err error) {
	return as, c.do(ctx, http.MethodGet, "/v1/accounts", nil, &as)
}

// AddAccount creates an account.
func (c *Client) AddAccount(ctx context.Context, req AddAccountRequest) (a AccountInfo, err error) {
	return a, c.do(ctx, http.MethodPost, "/v1/accounts", req, &a)
}

// DeleteAccount removes an account and everything it owns.
func (c *Client) DeleteAccount(ctx context.Context, name string) (r DeleteResult, err error) {
	return r, c.do(ctx, http.MethodDelete, "/v1/accounts/"+url.PathEscape(name), nil, &r)
}

// AddEntry whitelists an address, network or FQDN.
func (c *Client) AddEntry(ctx context.Context, req AddEntryRequest) (e EntryInfo, err error) {
	return e, c.do(ctx, http.MethodPost, "/v1/entries", req, &e)
}

// DeleteEntry removes an entry by ID or value.
func (c *Client) DeleteEntry(ctx context.Context, idOrValue string) (r DeleteResult, err error) {
	return r, c.do(ctx, http.MethodDelete, "/v1/entries/"+url.PathEscape(idOrValue), nil, &r)
}

// UpdateEntry changes an entry's perms, comment or refresh in place.
func (c *Client) UpdateEntry(ctx context.Context, id string, req UpdateEntryRequest) (e EntryInfo, err error) {
	return e, c.do(ctx, http.MethodPatch, "/v1/entries/"+url.PathEscape(id), req, &e)
}

// Export returns the whitelist as a whitelist file document.
func (c *Client) Export(ctx context.Context) (doc entryfile.Document, err error) {
	return doc, c.do(ctx, http.MethodGet, "/v1/export", nil, &doc)
}

// Explain tells why an address is admitted or dropped.
func (c *Client) Explain(ctx context.Context, req ExplainRequest) (ex Explanation, err error) {
	return ex, c.do(ctx, http.MethodPost, "/v1/explain", req, &ex)
}

// Reload re-reads the config and rebuilds the firewall. With confirm > 0
// it rolls back unless Confirm follows within confirm.
func (c *Client) Reload(ctx context.Context, confirm time.Duration) error {
	return c.do(ctx, http.MethodPost, "/v1/reload?confirm="+url.QueryEscape(confirm.String()), nil, nil)
}

// Confirm keeps a reload made with a confirmation deadline.
func (c *Client) Confirm(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/confirm", nil, nil)
}

// UpdateAccount changes account settings.
func (c *Client) UpdateAccount(ctx context.Context, name string, req UpdateAccountRequest) (a AccountInfo, err error) {
	return a, c.do(ctx, http.MethodPatch, "/v1/accounts/"+url.PathEscape(name), req, &a)
}

// SetPasscode sets an account's phone passcode; the result carries the
// account number callers key before it.
func (c *Client) SetPasscode(ctx context.Context, name, passcode string) (r SetPasscodeResult, err error) {
	return r, c.do(ctx, http.MethodPut, "/v1/accounts/"+url.PathEscape(name)+"/passcode", SetPasscodeRequest{Passcode: passcode}, &r)
}

// Lockouts lists lockout keys that lock or hold failures.
func (c *Client) Lockouts(ctx context.Context) (ls []LockoutInfo, err error) {
	return ls, c.do(ctx, http.MethodGet, "/v1/lockouts", nil, &ls)
}

// Drops lists who the firewall's final drop hit, as f selects.
func (c *Client) Drops(ctx context.Context, f firewall.DropFilter) (info DropsInfo, err error) {
	return info, c.do(ctx, http.MethodGet, "/v1/drops?"+DropFilterQuery(f).Encode(), nil, &info)
}

// ClearLockouts removes a lockout key, every key of an account, or all.
func (c *Client) ClearLockouts(ctx context.Context, what string, all bool) (keys []string, err error) {
	q := url.Values{"key": {what}}
	if all {
		q.Set("all", "true")
	}
	return keys, c.do(ctx, http.MethodDelete, "/v1/lockouts?"+q.Encode(), nil, &keys)
}

// Blocks lists the sources blocked for failed authentication.
func (c *Client) Blocks(ctx context.Context) (bs []BlockInfo, err error) {
	return bs, c.do(ctx, http.MethodGet, "/v1/blocks", nil, &bs)
}

// ClearBlocks unblocks one address, or every blocked source with all.
func (c *Client) ClearBlocks(ctx context.Context, addr string, all bool) (bs []BlockInfo, err error) {
	q := url.Values{"addr": {addr}}
	if all {
		q.Set("all", "true")
	}
	return bs, c.do(ctx, http.MethodDelete, "/v1/blocks?"+q.Encode(), nil, &bs)
}

// Grants lists live grants.
func (c *Client) Grants(ctx context.Context) (gs []GrantInfo, err error) {
	return gs, c.do(ctx, http.MethodGet, "/v1/grants", nil, &gs)
}

// RevokeGrants removes grants by ID or address.
func (c *Client) RevokeGrants(ctx context.Context, idOrIP string) (gs []GrantInfo, err error) {
	return gs, c.do(ctx, http.MethodDelete, "/v1/grants/"+url.PathEscape(idOrIP), nil, &gs)
}

// Audit returns the newest limit audit records (all if limit <= 0),
// oldest first.
func (c *Client) Audit(ctx context.Context, limit int) (rs []store.AuditRecord, err error) {
	return c.AuditFiltered(ctx, AuditFilter{Limit: limit})
}

// AuditFiltered returns the records f selects, oldest first.
func (c *Client) AuditFiltered(ctx context.Context, f AuditFilter) (rs []store.AuditRecord, err error) {
	q := url.Values{"limit": {strconv.Itoa(f.Limit)}}
	for k, v := range map[string]string{"account": f.Account, "action": f.Action, "result": f.Result} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	return rs, c.do(ctx, http.MethodGet, "/v1/audit?"+q.Encode(), nil, &rs)
}

// FQDNs lists the dynamic-DNS names.
func (c *Client) FQDNs(ctx context.Context) (fs []FQDNInfo, err error) {
	return fs, c.do(ctx, http.MethodGet, "/v1/fqdn", nil, &fs)
}

// RefreshFQDNs re-resolves names now (all if none) and returns the list.
func (c *Client) RefreshFQDNs(ctx context.Context, names ...string) (fs []FQDNInfo, err error) {
	return fs, c.do(ctx, http.MethodPost, "/v1/fqdn/refresh", RefreshRequest{Names: names}, &fs)
}

// SIPDomains lists the secret SIP domains.
func (c *Client) SIPDomains(ctx context.Context) (ds []string, err error) {
	return ds, c.do(ctx, http.MethodGet, "/v1/sip-domains", nil, &ds)
}

// AddSIPDomain adds a secret SIP domain and returns the new list.
func (c *Client) AddSIPDomain(ctx context.Context, domain string) (ds []string, err error) {
	return ds, c.do(ctx, http.MethodPost, "/v1/sip-domains/"+url.PathEscape(domain), nil, &ds)
}

// DeleteSIPDomain removes a secret SIP domain and returns the new list.
func (c *Client) DeleteSIPDomain(ctx context.Context, domain string) (ds []string, err error) {
	return ds, c.do(ctx, http.MethodDelete, "/v1/sip-domains/"+url.PathEscape(domain), nil, &ds)
}

// Providers lists the trusted-provider catalogue and custom providers.
func (c *Client) Providers(ctx context.Context) (ps []ProviderInfo, err error) {
	return ps, c.do(ctx, http.MethodGet, "/v1/providers", nil, &ps)
}

// SetProviders enables (or disables) providers by name, or all of them.
func (c *Client) SetProviders(ctx context.Context, enable bool, names []string, all bool) (ps []ProviderInfo, err error) {
	op := "disable"
	if enable {
		op = "enable"
	}
	return ps, c.do(ctx, http.MethodPost, "/v1/providers/"+op, ProvidersRequest{Names: names, All: all}, &ps)
}

// AddProvider records a custom provider.
func (c *Client) AddProvider(ctx context.Context, p auth.Provider) (pi ProviderInfo, err error) {
	return pi, c.do(ctx, http.MethodPost, "/v1/providers", p, &pi)
}

// Import adds accounts and entries in one transaction.
func (c *Client) Import(ctx context.Context, req ImportRequest) (res ImportResult, err error) {
	return res, c.do(ctx, http.MethodPost, "/v1/import", req, &res)
}

// ReloadDialplan asks the daemon to reload Asterisk's dialplan over AMI.
func (c *Client) ReloadDialplan(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/dialplan/reload", nil, nil)
}

// HeaderSafe keeps printable ASCII, at most 512 bytes.
func HeaderSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	if len(s) > 512 {
		s = s[:512]
	}
	return strings.TrimSpace(s)
}

// Backup streams a consistent copy of the database the daemon holds to w
// and returns its size. The CLI writes it with store.SaveBackup, which
// checks it before it replaces anything.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://dialgate/v1/db/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return 0, fmt.Errorf("%w (nothing answers on %s)", ErrNotRunning, c.socket)
		}
		return 0, fmt.Errorf("localapi: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, apiError(resp.StatusCode, resp.Status, data)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("localapi: backup: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("localapi: backup: got %d of %d bytes", n, resp.ContentLength)
	}
	return n, nil
}

// CheckDB asks the daemon to check the database it holds.
func (c *Client) CheckDB(ctx context.Context) (r store.CheckReport, err error) {
	return r, c.do(ctx, http.MethodPost, "/v1/db/check", nil, &r)
}
