# Sourced by `make test` and by .ci/run, so a developer's run and CI's run
# find the same things: the Go toolchain setting and the Terraform provider
# mirror. It prints what it found and what is missing; a test that needs a
# missing piece skips and says why in the summary at the end of the run.
# shellcheck shell=bash

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

# The AWS and Terraform tests install hashicorp/aws from a filesystem mirror
# (Terraform's registry is not reachable here). SHARDFORM_TF_PLUGIN_MIRROR
# wins; otherwise look where mirrors live, then anywhere on the machine.
if [ -z "${SHARDFORM_TF_PLUGIN_MIRROR:-}" ]; then
  _sf_aws=""
  for _sf_dir in /opt/tf-plugins "$HOME/.terraform.d/plugins" /usr/share/terraform/plugins /usr/local/share/terraform/plugins; do
    if [ -d "$_sf_dir/registry.terraform.io/hashicorp/aws" ]; then _sf_aws="$_sf_dir/registry.terraform.io/hashicorp/aws"; break; fi
  done
  if [ -z "$_sf_aws" ]; then
    _sf_aws=$(find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -name 'terraform-provider-aws*' -print 2>/dev/null | head -1 || true)
  fi
  if [ -n "$_sf_aws" ]; then
    export SHARDFORM_TF_PLUGIN_MIRROR="${_sf_aws%%/registry.terraform.io/*}"
  fi
  unset _sf_aws _sf_dir
fi
if [ -n "${SHARDFORM_TF_PLUGIN_MIRROR:-}" ]; then
  echo "test-env: provider mirror at $SHARDFORM_TF_PLUGIN_MIRROR"
else
  echo "test-env: no hashicorp/aws provider mirror found: the AWS Terraform tests will skip"
fi

command -v terraform >/dev/null || echo "test-env: terraform is not on PATH: the Terraform tests will fail"
{ command -v sshd >/dev/null || [ -x /usr/sbin/sshd ]; } || echo "test-env: sshd is not installed: the OpenSSH tests will fail"
command -v chromium >/dev/null || [ -n "${SHARDFORM_CHROMIUM:-}" ] || echo "test-env: chromium is not installed: the browser tests will skip"
[ -d "$(dirname "${BASH_SOURCE[0]}")/../web/node_modules" ] || echo "test-env: web/node_modules is missing (cd web && npm ci): the embedded-asset check will skip"
true
