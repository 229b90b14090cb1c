package policyconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"sigs.k8s.io/yaml"
)

// Defaults applied by WithDefaults.
const (
	DefaultListen          = "127.0.0.1:8787"
	DefaultMetricsListen   = "127.0.0.1:9787"
	DefaultUpstream        = "https://api.anthropic.com"
	DefaultMaxRequestBytes = 32 << 20 // the Messages API's own request limit
	DefaultVaultField      = "api_key"
	DefaultVaultMount      = "secret"
	DefaultRefresh         = 5 * time.Minute
	DefaultMaxStaleness    = 1 * time.Hour
	DefaultClockSkew       = 30 * time.Second
	MaxClockSkew           = 5 * time.Minute
	DefaultSubjectClaim    = "sub"
	DefaultGroupsClaim     = "groups"
)

// Well-known API paths.
const (
	PathMessages    = "/v1/messages"
	PathCountTokens = "/v1/messages/count_tokens"
	PathModels      = "/v1/models"
	PathModel       = "/v1/models/*"
)

// DefaultEndpoints is the allow-list used when a config names none.
var DefaultEndpoints = []string{PathMessages, PathCountTokens, PathModels, PathModel}

// Duration is a time.Duration written as a Go duration string ("90s", "5m").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Parse decodes a YAML or JSON document strictly (unknown fields are errors), applies defaults and
// validates it. Errors name the offending field.
func Parse(data []byte) (*Config, error) {
	c, err := Decode(data)
	if err != nil {
		return nil, err
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Decode decodes a YAML or JSON document strictly, without applying defaults or validating. The
// standalone sidecar uses it to apply command-line overrides (such as --api-key-file) before Validate.
func Decode(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSONStrict(data) // duplicate keys are errors: "last one wins" would hide a rule
	if err != nil {
		return nil, fmt.Errorf("failed to parse sidecar config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("failed to decode sidecar config: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("failed to decode sidecar config: more than one document")
	}
	return &c, nil
}

// ApplyDefaults fills every unset field that has a default.
func (c *Config) ApplyDefaults() {
	if c.Server.Listen == "" {
		c.Server.Listen = DefaultListen
	}
	if c.Server.MetricsListen == "" {
		c.Server.MetricsListen = DefaultMetricsListen
	}
	if c.Server.Upstream == "" {
		c.Server.Upstream = DefaultUpstream
	}
	if len(c.Endpoints) == 0 {
		c.Endpoints = append([]string(nil), DefaultEndpoints...)
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	for i := range c.Models.MaxTokens {
		if c.Models.MaxTokens[i].Action == "" {
			c.Models.MaxTokens[i].Action = ActionReject
		}
	}
	if v := c.Credentials.Vault; v != nil {
		if v.AuthMount == "" {
			v.AuthMount = v.AuthMethod
		}
		if v.Mount == "" {
			v.Mount = DefaultVaultMount
		}
		if v.Field == "" {
			v.Field = DefaultVaultField
		}
		if v.RefreshInterval.Duration == 0 {
			v.RefreshInterval.Duration = DefaultRefresh
		}
		if v.MaxStaleness.Duration == 0 {
			v.MaxStaleness.Duration = DefaultMaxStaleness
		}
	}
	if e := c.EndUser; e != nil {
		if e.Mode == "" {
			e.Mode = EndUserDisabled
		}
		if e.Header == "" {
			e.Header = "Authorization"
		}
		if e.SubjectClaim == "" {
			e.SubjectClaim = DefaultSubjectClaim
		}
		if e.GroupsClaim == "" {
			e.GroupsClaim = DefaultGroupsClaim
		}
		for i := range e.Issuers {
			if len(e.Issuers[i].Algorithms) == 0 {
				e.Issuers[i].Algorithms = DefaultAlgorithms
			}
		}
		if e.ClockSkew.Duration == 0 {
			e.ClockSkew.Duration = DefaultClockSkew
		}
	}
	if c.Limits.Backend == "" {
		c.Limits.Backend = BackendLocal
	}
	if c.Limits.FailureMode == "" {
		c.Limits.FailureMode = FailClosed
	}
	for i := range c.Limits.Rules {
		if c.Limits.Rules[i].TokenType == "" {
			c.Limits.Rules[i].TokenType = TokensTotal
		}
	}
	for i := range c.Budgets {
		if c.Budgets[i].TokenType == "" {
			c.Budgets[i].TokenType = TokensTotal
		}
		if c.Budgets[i].Enforcement == "" {
			c.Budgets[i].Enforcement = EnforcementSoft
		}
	}
}

// Marshal renders c as indented JSON with a trailing newline. The encoding is deterministic (struct
// fields in declaration order, map keys sorted), so equal configs give equal bytes and equal hashes.
func Marshal(c *Config) ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode sidecar config: %w", err)
	}
	return append(b, '\n'), nil
}

// Hash returns a short content hash of a rendered document, used to name and annotate it.
func Hash(rendered []byte) string {
	sum := sha256.Sum256(rendered)
	return hex.EncodeToString(sum[:])[:16]
}
