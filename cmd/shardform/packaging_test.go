package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/shardform/shardform/terraform"
)

// TestContainerPackaging checks what the image promises and no engine
// runs here to prove: the Terraform it bakes in is the pinned one, checked
// by SHA256; it runs unprivileged with a HEALTHCHECK; the build context
// leaves out history, the data dir and keys; compose takes the Postgres
// password from the environment.
func TestContainerPackaging(t *testing.T) {
	t.Parallel()
	read := func(name string) string {
		raw, err := os.ReadFile("../../" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	dockerfile, ignore, compose := read("Dockerfile"), read(".dockerignore"), read("docker-compose.yml")
	for _, tc := range []struct {
		what, text string
		re         string
	}{
		{"Terraform pinned to terraform.PinnedVersion", dockerfile, `(?m)^ARG TERRAFORM_VERSION=` + regexp.QuoteMeta(terraform.PinnedVersion) + `$`},
		{"the download's SHA256 checked", dockerfile, `amd64\) sum=[0-9a-f]{64} ;;[\s\S]*sha256sum -c -`},
		{"Terraform copied into the runtime image", dockerfile, `(?m)^COPY --from=terraform /out/terraform /usr/local/bin/terraform$`},
		{"an unprivileged user", dockerfile, `(?m)^USER shardform$`},
		{"a HEALTHCHECK on readiness", dockerfile, `(?m)^HEALTHCHECK .*CMD \["shardform", "health"\]$`},
		{".git ignored", ignore, `(?m)^\.git$`},
		{"the data dir ignored", ignore, `(?m)^\.shardform$`},
		{"master keys ignored", ignore, `(?m)^\*\*/master\.key$`},
		{"Postgres password from the environment", compose, `POSTGRES_PASSWORD: \$\{POSTGRES_PASSWORD:-shardform\}`},
		{"the same password in the URL", compose, `postgres://shardform:\$\{POSTGRES_PASSWORD:-shardform\}@postgres`},
	} {
		if !regexp.MustCompile(tc.re).MatchString(tc.text) {
			t.Errorf("%s: no match for %s", tc.what, tc.re)
		}
	}
	if strings.Contains(dockerfile, "USER root") {
		t.Error("the image switches back to root")
	}
}
