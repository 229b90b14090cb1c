# claude-guard Makefile. `make help` lists the targets.
#
# Every tool comes from the Go module proxy: controller-gen and golangci-lint through the tools modules
# (hack/tools/go.mod, hack/tools/lint/go.mod), Helm through hack/tools/helm/go.mod (hack/helm.sh), the
# test control plane through hack/envtest.sh. Built binaries are cached outside
# the repository (~/.cache/claude-guard, keyed by version); nothing needs to be installed by hand.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

GO        ?= go
TOOLS     := $(GO) tool -modfile=hack/tools/go.mod
CONTROLLER_GEN := $(TOOLS) controller-gen
# golangci-lint with the Kube API Linter built in (sigs.k8s.io/kube-api-linter's own build of it, at the
# golangci-lint version hack/tools/lint/go.mod pins): one binary for both configurations.
GOLANGCI_LINT  := $(GO) tool -modfile=hack/tools/lint/go.mod golangci-lint-kube-api-linter
# Helm v3 from its own tools module (hack/tools/helm), built and cached by hack/helm.sh.
HELM       = $(shell hack/helm.sh)
# The kubectl that matches the test control plane (built by hack/envtest.sh), not whatever is on PATH.
KUBECTL    = $(shell hack/envtest.sh)/kubectl
GOTEST_FLAGS ?=

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate the CRDs, the chart's RBAC rules (from the markers) and config/ (from the chart).
	hack/manifests.sh

.PHONY: generate
generate: ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: verify
verify: ## Fail if generated files are stale or code is not gofmt-clean.
	hack/verify.sh

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet (the integration tests too).
	$(GO) vet -tags integration ./...

.PHONY: lint
lint: ## Run golangci-lint (config: .golangci.yml) and the Kube API Linter on api/ (.golangci-kal.yml).
	$(GOLANGCI_LINT) run ./...
	$(GOLANGCI_LINT) run -c .golangci-kal.yml ./api/...

.PHONY: chart-lint
chart-lint: ## helm lint the chart (test/chart also lints it with non-default values).
	$(HELM) lint --strict charts/claude-guard

.PHONY: chart-test
chart-test: ## Chart tests: lint, golden renderings (UPDATE_GOLDEN=1 rewrites them), values validation, a real install.
	$(GO) test -count=1 -tags integration ./test/chart/...

.PHONY: envtest
envtest: ## Build (or reuse) the test control plane and print its directory.
	@hack/envtest.sh

.PHONY: test-unit
test-unit: ## Fast inner loop: unit tests only, no control plane or test servers.
	$(GO) test $(GOTEST_FLAGS) ./...

.PHONY: test
test: ## The whole suite: verify, vet, lint, unit, envtest and end-to-end tests.
	hack/test.sh

.PHONY: bench
bench: ## Run the benchmarks and print each figure next to its target.
	hack/bench.sh

##@ Build

.PHONY: build
build: ## Build the manager, the sidecar and the kubectl plugin (bin/kubectl-claude_guard) into bin/.
	$(GO) build -o bin/manager ./cmd/manager
	$(GO) build -o bin/sidecar ./cmd/sidecar
	$(GO) build -o bin/kubectl-claude_guard ./cmd/kubectl-claude_guard

# `make images REGISTRY=registry.example.com/claude-guard PUSH=1`; any other hack/images flag through
# IMAGES_FLAGS (docs/images.md).
REGISTRY ?=
PUSH ?=
IMAGES_FLAGS ?= $(if $(REGISTRY),-registry=$(REGISTRY)) $(if $(filter-out 0 false,$(PUSH)),-push)

.PHONY: images
images: ## Build the manager and sidecar images (OCI tarballs in bin/images; REGISTRY=... PUSH=1 to push)
	$(GO) run ./hack/images $(IMAGES_FLAGS)

.PHONY: run
run: ## Run the manager against the cluster in KUBECONFIG.
	$(GO) run ./cmd/manager --no-tenant=Deny

.PHONY: demo
demo: ## Local demo in real pods: images, a local cluster with a real node, the chart installed with helm, samples applied with kubectl, an SDK app calling through its sidecar (needs root).
	$(GO) run ./hack/demo

##@ Deployment

.PHONY: install
install: ## Install the CRDs into the cluster in KUBECONFIG.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs: this DELETES every ClaudeAccessPolicy, ClaudeTenant and ClaudeRevocation in the cluster (asks first; CONFIRM=yes skips).
	@echo "make uninstall deletes the claude-guard CRDs and with them every ClaudeAccessPolicy, ClaudeTenant and ClaudeRevocation in the cluster:"
	@$(KUBECTL) get claudeaccesspolicies,claudetenants,clauderevocations -A --no-headers 2>/dev/null | sed 's/^/  /' || true
	@[ "$(CONFIRM)" = yes ] || { printf 'Type yes to go on: '; read answer; [ "$$answer" = yes ]; } || { echo "Nothing deleted."; exit 1; }
	$(KUBECTL) delete -k config/crd

.PHONY: deploy
deploy: ## Deploy what the chart deploys with default values (config/default, rendered from it) to the cluster in KUBECONFIG.
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove what deploy created.
	$(KUBECTL) delete -k config/default
