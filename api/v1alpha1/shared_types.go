package v1alpha1

// ModelPattern is a Claude model name or a glob in which '*' matches any run of characters, for example
// "claude-haiku-4-5" or "claude-sonnet-*".
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9._*-]+$') && !self.contains('**')",message="must be a model name or glob made of lowercase letters, digits, '.', '-', '_' and single '*' (e.g. claude-haiku-*)"
type ModelPattern string

// ModelName is a Claude model name without wildcards.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9._-]+$')",message="must be a model name made of lowercase letters, digits, '.', '-' and '_' (no wildcards)"
type ModelName string

// RuleName names a limit or budget rule; denials quote it.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
type RuleName string

// LimitKey says whose usage a limit counts.
// +kubebuilder:validation:Enum=Workload;EndUser;Namespace;Session
type LimitKey string

// Limit keys.
const (
	// KeyWorkload counts per workload identity (SPIFFE ID, or pod service account).
	KeyWorkload LimitKey = "Workload"
	// KeyEndUser counts per verified end-user subject.
	KeyEndUser LimitKey = "EndUser"
	// KeyNamespace counts for the whole namespace.
	KeyNamespace LimitKey = "Namespace"
	// KeySession counts per client session of a workload (Claude Code's X-Claude-Code-Session-Id, or
	// the session in an SDK's metadata.user_id). The client chooses its session ids, so a Session limit
	// stops a runaway session, not a client: pair it with a Workload or EndUser limit. Policies only.
	KeySession LimitKey = "Session"
)

// RateWindow is the window of a rate limit.
// +kubebuilder:validation:Enum=Minute;Hour;Day
type RateWindow string

// Rate limit windows.
const (
	RateWindowMinute RateWindow = "Minute"
	RateWindowHour   RateWindow = "Hour"
	RateWindowDay    RateWindow = "Day"
)

// BudgetWindow is the calendar window of a budget (UTC).
// +kubebuilder:validation:Enum=Day;Week;Month
type BudgetWindow string

// Budget windows.
const (
	BudgetWindowDay   BudgetWindow = "Day"
	BudgetWindowWeek  BudgetWindow = "Week"
	BudgetWindowMonth BudgetWindow = "Month"
)

// TokenType says which tokens a limit counts.
// +kubebuilder:validation:Enum=Input;Output;Total
type TokenType string

// Token types a token limit counts.
const (
	TokenTypeInput  TokenType = "Input"
	TokenTypeOutput TokenType = "Output"
	TokenTypeTotal  TokenType = "Total"
)

// RateLimit allows at most Requests requests and Tokens tokens per Window for each Key.
// +kubebuilder:validation:AtLeastOneOf=requests;tokens
type RateLimit struct {
	// name identifies the rule; a denial names it.
	// +required
	Name RuleName `json:"name"`

	// key says whose usage is counted: Workload, EndUser, Namespace or Session (policies only).
	// +optional
	// +kubebuilder:default=Workload
	Key LimitKey `json:"key,omitempty"`

	// window is Minute, Hour or Day.
	// +required
	Window RateWindow `json:"window"`

	// requests is the number of requests allowed per window.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000
	Requests *int64 `json:"requests,omitempty"`

	// tokens is the number of tokens allowed per window. A request reserves its estimated input plus
	// max_tokens before it is sent and is settled with the real usage afterwards.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000000
	Tokens *int64 `json:"tokens,omitempty"`

	// tokenType says which tokens count against tokens: Input, Output or Total.
	// +optional
	// +kubebuilder:default=Total
	TokenType TokenType `json:"tokenType,omitempty"`
}

// BudgetEnforcement is how a budget holds: Soft or Hard.
// +kubebuilder:validation:Enum=Soft;Hard
type BudgetEnforcement string

const (
	// BudgetSoft admits a request while the window's settled spend is below the budget: requests in
	// flight when it is reached may each finish above it.
	BudgetSoft BudgetEnforcement = "Soft"
	// BudgetHard reserves a request's maximum cost (its input and max_tokens at the model's dearest
	// prices) before forwarding it and admits it only if that fits: concurrent requests cannot overshoot.
	BudgetHard BudgetEnforcement = "Hard"
)

// Budget is an allowance of tokens or US dollars per calendar window. A Soft budget (the default) admits
// a request while the window's spend is below the budget, so requests in flight may overshoot it by their
// own cost; a Hard one reserves each request's maximum cost first (docs/limits.md states both bounds).
// +kubebuilder:validation:ExactlyOneOf=tokens;usd
type Budget struct {
	// name identifies the budget; a denial names it.
	// +required
	Name RuleName `json:"name"`

	// key says whose spend is counted: Workload, EndUser, Namespace or Session (policies only).
	// +optional
	// +kubebuilder:default=Namespace
	Key LimitKey `json:"key,omitempty"`

	// window is Day, Week or Month (UTC calendar windows).
	// +required
	Window BudgetWindow `json:"window"`

	// tokens is the allowance in tokens.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000000
	Tokens *int64 `json:"tokens,omitempty"`

	// usd is the allowance in US dollars as a decimal string, e.g. "25" or "12.50"; usage is priced with
	// the operator's price table.
	// +optional
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,12}([.][0-9]{1,6})?$') && double(self) > 0.0",message="must be a positive decimal amount such as \"25\" or \"12.50\""
	USD string `json:"usd,omitempty"`

	// tokenType says which tokens count against a token budget: Input, Output or Total.
	// +optional
	// +kubebuilder:default=Total
	TokenType TokenType `json:"tokenType,omitempty"`

	// enforcement is Soft (the default: a request is admitted while the settled spend is below the
	// budget) or Hard (a request is admitted only if its maximum cost, reserved before it is forwarded,
	// fits in what is left; a request whose max_tokens alone exceeds the budget is never admitted).
	// +optional
	// +kubebuilder:default=Soft
	Enforcement BudgetEnforcement `json:"enforcement,omitempty"`
}

// Condition types and reasons shared by both kinds.
const (
	// ConditionReady is True when the object is fully reconciled and in force.
	ConditionReady = "Ready"
)
