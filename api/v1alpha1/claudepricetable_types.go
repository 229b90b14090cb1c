package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PriceTableName is the name of the one ClaudePriceTable the operator reads.
const PriceTableName = "default"

// BuiltinPrices says whether the price table built into the operator applies beneath a
// ClaudePriceTable's own entries.
// +kubebuilder:validation:Enum=Include;Exclude
type BuiltinPrices string

const (
	// BuiltinInclude prices a model no entry matches from the table built into this operator version.
	BuiltinInclude BuiltinPrices = "Include"
	// BuiltinExclude uses the ClaudePriceTable's entries only.
	BuiltinExclude BuiltinPrices = "Exclude"
)

// PriceUSD is a price in US dollars as a decimal string with at most 6 decimal places, e.g. "3" or
// "0.30".
// +kubebuilder:validation:MaxLength=20
// +kubebuilder:validation:Pattern=`^[0-9]{1,12}([.][0-9]{1,6})?$`
type PriceUSD string

// TokenPrices are US dollars per million tokens of each kind. A cache price left unset follows the
// API's multipliers of the same tier's input price: cache reads 0.1x, 5-minute cache writes 1.25x,
// 1-hour cache writes 2x.
type TokenPrices struct {
	// input is the price of a million input tokens. A tier (batch, priority) that leaves it unset
	// costs the standard input price.
	// +optional
	Input PriceUSD `json:"input,omitempty"`
	// output is the price of a million output tokens. A tier that leaves it unset costs the standard
	// output price.
	// +optional
	Output PriceUSD `json:"output,omitempty"`
	// cacheRead is the price of a million cache-read input tokens.
	// +optional
	CacheRead PriceUSD `json:"cacheRead,omitempty"`
	// cacheWrite5m is the price of a million input tokens written to the 5-minute cache (also cache
	// writes a response does not split by lifetime).
	// +optional
	CacheWrite5m PriceUSD `json:"cacheWrite5m,omitempty"`
	// cacheWrite1h is the price of a million input tokens written to the 1-hour cache.
	// +optional
	CacheWrite1h PriceUSD `json:"cacheWrite1h,omitempty"`
}

// ModelPrice prices the models one glob matches. Its token prices are the standard tier's.
// +kubebuilder:validation:XValidation:rule="has(self.input) && has(self.output)",message="input and output prices are required (USD per million tokens)"
type ModelPrice struct {
	// model is the model name or glob this entry prices. The first entry whose glob matches a model
	// prices it.
	// +required
	Model ModelPattern `json:"model"`

	TokenPrices `json:",inline"`

	// batch prices responses the API reports with usage.service_tier "batch".
	// +optional
	Batch *TokenPrices `json:"batch,omitempty"`

	// priority prices responses the API reports with usage.service_tier "priority".
	// +optional
	Priority *TokenPrices `json:"priority,omitempty"`

	// webSearchPer1000 is the fee per thousand server-side web searches
	// (usage.server_tool_use.web_search_requests).
	// +optional
	WebSearchPer1000 PriceUSD `json:"webSearchPer1000,omitempty"`
}

// ClaudePriceTableSpec is the platform team's prices.
type ClaudePriceTableSpec struct {
	// builtin Include (the default) prices every model no entry of prices matches from the table
	// built into the operator (docs/pricing.md lists it); Exclude uses prices only.
	// +optional
	// +kubebuilder:default=Include
	Builtin BuiltinPrices `json:"builtin,omitempty"`

	// prices are the cluster's prices, checked in order before the built-in table: the first entry
	// whose glob matches a model prices it.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Prices []ModelPrice `json:"prices,omitempty"`
}

// ClaudePriceTableStatus is what the operator made of the table.
type ClaudePriceTableStatus struct {
	// conditions of the table. Ready is True once the table is in force: rendered into the configs of
	// every policy with a USD budget.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// entries is how many prices are in force: the table's and, with builtin Include, the built-in
	// ones.
	// +optional
	Entries int32 `json:"entries,omitempty"`

	// builtinAsOf is the date of the built-in prices of the running operator, when they are included.
	// +optional
	BuiltinAsOf string `json:"builtinAsOf,omitempty"`
}

// ClaudePriceTable is the cluster's price list for USD budgets: what each Claude model costs per
// million tokens of each kind, per tier and per server-tool use. It is cluster-scoped and there is one,
// named "default", which the platform team owns. Without it the operator prices from its built-in
// table. Edits take effect in the sidecars of every policy with a USD budget within a minute, without
// an operator upgrade.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cprice,categories=claude-guard
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'default'",message="the operator reads one ClaudePriceTable, named default"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Builtin",type=string,JSONPath=`.spec.builtin`
// +kubebuilder:printcolumn:name="Entries",type=integer,JSONPath=`.status.entries`
// +kubebuilder:printcolumn:name="Builtin As Of",type=string,JSONPath=`.status.builtinAsOf`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClaudePriceTable struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the object's metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the platform team's prices.
	// +optional
	Spec ClaudePriceTableSpec `json:"spec,omitempty"`

	// status is what the operator made of them.
	// +optional
	Status ClaudePriceTableStatus `json:"status,omitempty"`
}

// ClaudePriceTableList is a list of ClaudePriceTable.
//
// +kubebuilder:object:root=true
type ClaudePriceTableList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClaudePriceTable `json:"items"`
}

// GetConditions returns the table's status conditions (internal/conditions).
func (t *ClaudePriceTable) GetConditions() []metav1.Condition { return t.Status.Conditions }

// SetConditions replaces the table's status conditions.
func (t *ClaudePriceTable) SetConditions(c []metav1.Condition) { t.Status.Conditions = c }
