// Empty stand-in: openbao's go.mod requires v2.0.0 of this module, which the proxy does not serve, and
// only openbao's own tests import it.
module github.com/openbao/openbao/api/auth/approle/v2

go 1.24
