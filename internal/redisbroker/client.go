package redisbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// DefaultRefresh is how old the credentials a Client holds may be before the next new Redis connection
// asks the broker again. Passwords change rarely (a new master secret, a namespace recreated, which
// also replaces its pods), so this only bounds how long a rotated password takes to arrive.
const DefaultRefresh = 30 * time.Second

// maxResponse bounds what is read of an answer: a user name and a password.
const maxResponse = 4 << 10

// ClientOptions configure NewClient.
type ClientOptions struct {
	// URL is https://host:port of the broker.
	URL string
	// ServerID is the SPIFFE ID the broker must present.
	ServerID string
	// Source is the sidecar's own identity (it presents the SVID and verifies the broker with the bundle).
	Source Source
	// Refresh is DefaultRefresh when zero.
	Refresh time.Duration
	// Timeout bounds one request to the broker; 10 s when zero.
	Timeout time.Duration
}

// Client fetches the namespace's Redis credentials from the broker and keeps the last ones it got.
type Client struct {
	url     string
	http    *http.Client
	refresh time.Duration
	now     func() time.Time

	mu      sync.Mutex
	creds   Credentials
	fetched time.Time
}

// NewClient returns a client of the broker at o.URL.
func NewClient(o ClientOptions) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("the Redis credential broker URL must be https://host:port, got %q", o.URL)
	}
	server, err := spiffeid.FromString(o.ServerID)
	if err != nil {
		return nil, fmt.Errorf("the Redis credential broker's SPIFFE ID %q: %w", o.ServerID, err)
	}
	if o.Source == nil {
		return nil, errors.New("the Redis credential broker needs the sidecar's SPIFFE identity")
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	t := tlsconfig.MTLSClientConfig(o.Source, o.Source, tlsconfig.AuthorizeID(server))
	return &Client{
		url: strings.TrimSuffix(u.String(), "/") + Path, refresh: o.Refresh, now: time.Now,
		http: &http.Client{
			Timeout:   o.Timeout,
			Transport: &http.Transport{TLSClientConfig: t, Proxy: nil, MaxIdleConns: 1, IdleConnTimeout: time.Minute},
			// The answer holds a password: it goes to the server the sidecar authenticated, nowhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// Credentials is a go-redis credentials provider (redis.Options.CredentialsProviderContext): it returns
// the credentials it holds while they are fresh and asks the broker otherwise. go-redis calls it for
// every new connection only, so a connection refused with WRONGPASS is followed, once the held
// credentials are older than the refresh interval, by one with the broker's current password. While the
// broker cannot be reached the last credentials are used.
func (c *Client) Credentials(ctx context.Context) (string, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.fetched.IsZero() && c.now().Sub(c.fetched) < c.refresh {
		return c.creds.Username, c.creds.Password, nil
	}
	creds, err := c.fetch(ctx)
	if err != nil {
		if c.fetched.IsZero() {
			return "", "", err
		}
		return c.creds.Username, c.creds.Password, nil
	}
	c.creds, c.fetched = creds, c.now()
	return creds.Username, creds.Password, nil
}

// fetch asks the broker for the credentials now.
func (c *Client) fetch(ctx context.Context) (Credentials, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return Credentials{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Credentials{}, fmt.Errorf("failed to get the Redis password from the credential broker: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return Credentials{}, fmt.Errorf("failed to read the credential broker's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		// Refusals carry no secret: they say what the broker thinks of the caller's identity.
		return Credentials{}, fmt.Errorf("the Redis credential broker answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var creds Credentials
	if err := json.Unmarshal(body, &creds); err != nil || creds.Username == "" || creds.Password == "" {
		// Never the body: it may hold a password.
		return Credentials{}, errors.New("the Redis credential broker's answer is not a user and password")
	}
	return creds, nil
}
