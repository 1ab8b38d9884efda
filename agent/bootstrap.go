package agent

import _ "embed" // the bootstrap script

//go:embed bootstrap.sh
var bootstrapScript []byte

// BootstrapScript is GET /v1/agent/bootstrap.sh: a POSIX shell script doing
// what `shardform node join` and `node refresh` do, with curl. It holds no
// secret (the registration token is its argument).
func BootstrapScript() []byte { return bootstrapScript }
