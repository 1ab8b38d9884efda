package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// RegistrationTokenVariable is the sensitive Terraform variable that
// carries a provisioned node's registration token into its cloud-init
// (set by the run, never written into the configuration).
const RegistrationTokenVariable = "shardform_registration_token"

// Join makes a provisioned node join by itself: its cloud-init runs the
// server's bootstrap script (GET /v1/agent/bootstrap.sh) with a
// registration token bound to the provision request.
type Join struct {
	URL string // the API's address as the node reaches it
}

// joinScript fetches and runs the bootstrap, retrying while the API is
// unreachable or the apply has not registered the node yet (409); $0 is
// the URL and $1 the token, so neither is parsed by a shell.
const joinScript = `for i in $(seq 90); do curl -fsS "$0/v1/agent/bootstrap.sh" -o /run/shardform-bootstrap.sh && sh /run/shardform-bootstrap.sh --url "$0" --token "$1"; s=$?; [ $s -eq 0 ] && exit 0; [ $s -eq 3 ] && exit 3; sleep 10; done; exit 1`

// joinCloudConfig is the cloud-config part that joins: a runcmd entry
// whose token is the Terraform variable (interpolated by Terraform: the
// only unescaped "${" of the user data).
func joinCloudConfig(j *Join) (string, error) {
	script, err := quote(joinScript)
	if err != nil {
		return "", err
	}
	url, err := quote(strings.TrimRight(j.URL, "/"))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("runcmd:\n  - [\"sh\", \"-c\", %s, %s, \"${var.%s}\"]\n", escape(script), escape(url), RegistrationTokenVariable), nil
}

// quote is s as a JSON string without HTML escapes (YAML reads it as a
// double-quoted scalar).
func quote(s string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// joinVariable declares the token's variable in a configuration that joins.
func joinVariable(vars map[string]any, j *Join) {
	if j != nil {
		vars[RegistrationTokenVariable] = map[string]any{"type": "string", "sensitive": true}
	}
}

// cloudIniter is a driver whose machines run cloud-init user data.
type cloudIniter interface{ CloudInit() bool }

// JoinsByCloudInit reports whether d renders Request.Join.
func JoinsByCloudInit(d Driver) bool {
	c, ok := d.(cloudIniter)
	return ok && c.CloudInit()
}

// CloudInit implements cloudIniter: hetzner servers run cloud-init.
func (*Hetzner) CloudInit() bool { return true }

// CloudInit implements cloudIniter: the Debian AMIs run cloud-init.
func (*AWS) CloudInit() bool { return true }
