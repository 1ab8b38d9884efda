// Package terraform will run Terraform through terraform-exec: workspaces,
// the pg state backend, plan files kept in Postgres, and log streaming. It is
// filled by the provisioning issue.
package terraform
