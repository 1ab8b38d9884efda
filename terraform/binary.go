// Package terraform runs Terraform for shardform, one process per command
// (plan and apply read Terraform's machine-readable -json stream; the
// binary's version is checked once per runner): one workspace directory per
// provision request, state in Terraform's `pg`
// backend (schema terraform_state, Terraform workspace = provision id),
// providers from a filesystem mirror or a shared plugin cache, plans kept as
// bytes so apply may run on another machine, and every run's output streamed
// to a writer the caller chooses.
package terraform

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hc-install"
	"github.com/hashicorp/hc-install/fs"
	"github.com/hashicorp/hc-install/product"
	"github.com/hashicorp/hc-install/releases"
	"github.com/hashicorp/hc-install/src"
)

// PinnedVersion is the Terraform release downloaded when no binary is found.
const PinnedVersion = "1.11.4"

// FindBinary returns the terraform binary to run: explicitPath when set (it
// must exist), else a terraform on PATH, else the pinned release installed
// into dataDir/bin (downloaded the first time; found there afterwards).
//
// The download path needs releases.hashicorp.com and is not exercised by the
// tests, which run where Terraform is on PATH.
func FindBinary(ctx context.Context, explicitPath, dataDir string) (string, error) {
	installer := install.NewInstaller()
	if explicitPath != "" {
		path, err := installer.Ensure(ctx, []src.Source{&fs.AnyVersion{ExactBinPath: explicitPath}})
		if err != nil {
			return "", fmt.Errorf("terraform binary %s: %w", explicitPath, err)
		}
		return path, nil
	}
	pinned := version.Must(version.NewVersion(PinnedVersion))
	binDir := filepath.Join(dataDir, "bin")
	path, err := installer.Ensure(ctx, []src.Source{
		&fs.AnyVersion{Product: &product.Terraform},
		&fs.ExactVersion{Product: product.Terraform, Version: pinned, ExtraPaths: []string{binDir}},
		&releases.ExactVersion{Product: product.Terraform, Version: pinned, InstallDir: binDir},
	})
	if err != nil {
		return "", fmt.Errorf("find or install terraform %s: %w", PinnedVersion, err)
	}
	return path, nil
}
