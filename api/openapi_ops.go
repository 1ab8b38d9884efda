package api

import (
	"encoding/json"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/shardform/shardform/agent"
	"github.com/shardform/shardform/audit"
	"github.com/shardform/shardform/capacity"
	"github.com/shardform/shardform/credentials"
	"github.com/shardform/shardform/dashboard"
	"github.com/shardform/shardform/dns"
	"github.com/shardform/shardform/domain"
	"github.com/shardform/shardform/identity"
	"github.com/shardform/shardform/nodeops"
	"github.com/shardform/shardform/placement"
	"github.com/shardform/shardform/planner"
	"github.com/shardform/shardform/provision"
	"github.com/shardform/shardform/sshca"
	"github.com/shardform/shardform/sshsign"
)

// firewallRulesBody is GET /v1/nodes/{id}/firewall/rules.
type firewallRulesBody struct {
	Data []provision.FirewallRule `json:"data"`
}

// forceParam is the cancel endpoints' force flag.
var forceParam = queryParam{name: "force", kind: "boolean", description: "true: kill the run at once instead of interrupting it and waiting for the grace period."}

// deleteForceParam is the node deletions' force flag.
var deleteForceParam = queryParam{name: "force", kind: "boolean", description: "true: delete the node even though it still holds instances (they are deleted with it)."}

// Answer shapes that handlers build inline (fiber.Map), named for the document.
type (
	// planBody is the masked JSON plan of GET /v1/runs/{id}/plan: the
	// parts of terraform-json's Plan it keeps (no configuration).
	planBody struct {
		FormatVersion    string                          `json:"format_version"`
		TerraformVersion string                          `json:"terraform_version"`
		Variables        map[string]*tfjson.PlanVariable `json:"variables,omitempty"`
		PlannedValues    json.RawMessage                 `json:"planned_values,omitempty"` // terraform-json StateValues
		ResourceDrift    []*tfjson.ResourceChange        `json:"resource_drift,omitempty"`
		ResourceChanges  []*tfjson.ResourceChange        `json:"resource_changes,omitempty"`
		OutputChanges    map[string]*tfjson.Change       `json:"output_changes,omitempty"`
		PriorState       json.RawMessage                 `json:"prior_state,omitempty"` // terraform-json State
		Applyable        bool                            `json:"applyable,omitempty"`
		Complete         bool                            `json:"complete,omitempty"`
		Errored          bool                            `json:"errored,omitempty"`
	}
	statusBody struct {
		Status string `json:"status"`
	}
	readyBody struct {
		Status      string            `json:"status"` // ok, degraded (a queue this process cannot run) or unavailable
		Error       string            `json:"error,omitempty"`
		Detail      string            `json:"detail,omitempty"`      // the cause, for a platform admin's credential only
		Unavailable map[string]string `json:"unavailable,omitempty"` // queue → reason
	}
	detailedBody struct {
		Status   string         `json:"status"`
		Version  string         `json:"version"`
		Database map[string]any `json:"database"`
		Queue    map[string]any `json:"queue"`
	}
	bootstrapStatusBody struct {
		NeedsBootstrap bool `json:"needs_bootstrap"`
	}
	providersBody struct {
		Data []provision.ProviderInfo `json:"data"`
	}
	logsBody struct {
		Data    []provision.LogLine `json:"data"`
		Running bool                `json:"running"`
	}
	caKeysBody struct {
		Data []sshsign.CAKey `json:"data"`
	}
	dnsZonesBody struct {
		Data []dns.Zone `json:"data"`
	}
)

var (
	certState = []string{"active", "expired", "revoked"}
	orgQuery  = []queryParam{{name: "organization_id", kind: "uuid", description: "The organization whose file to answer (public: no credential needed)."}}
)

// operations is every route the server can serve, documented. The route
// table test fails when a route is missing here or an entry has no route.
// dashboardOperations documents the web dashboard's pages (HTML, served
// with a session cookie, never JSON).
func dashboardOperations() []operation {
	var ops []operation
	for _, p := range dashboard.New(dashboard.Config{}).Pages() {
		op := operation{method: p.Method, path: p.Path, summary: p.Summary, access: public, produces: "text/html", status: p.Status, dashboard: true}
		if p.Method == "POST" {
			op.errors = []int{403}
		}
		ops = append(ops, op)
	}
	return ops
}

func baseOperations() []operation {
	return []operation{
		// Health (public).
		{method: "GET", path: "/health", summary: "Liveness", access: public, resp: statusBody{}, status: 200},
		{method: "GET", path: "/health/live", summary: "Liveness", access: public, resp: statusBody{}, status: 200},
		{method: "GET", path: "/health/ready", summary: "Readiness: 200 when Postgres answers (\"degraded\" naming a queue this process cannot run), 503 with a generic reason", access: public, resp: readyBody{}, status: 200, also: []int{503}},
		{method: "GET", path: "/ready", summary: "Readiness (alias of /health/ready)", access: public, resp: readyBody{}, status: 200, also: []int{503}},
		{method: "GET", path: "/health/detailed", summary: "Database latency, River jobs by state, version", access: public, resp: detailedBody{}, status: 200, also: []int{503}},
		{method: "GET", path: "/metrics", summary: "Prometheus metrics", access: public, produces: "text/plain", status: 200},
		{method: "GET", path: "/openapi.json", summary: "This document (JSON)", access: public, produces: "application/json", status: 200},
		{method: "GET", path: "/openapi.yaml", summary: "This document (YAML)", access: public, produces: "application/yaml", status: 200},
		{method: "GET", path: "/docs", summary: "Interactive API documentation (Swagger UI)", access: public, produces: "text/html", status: 200},
		{method: "GET", path: "/docs/:asset", summary: "A file of the interactive documentation (JavaScript or CSS)", access: public, produces: "*/*", status: 200, errors: []int{404}},

		// Authentication.
		{method: "GET", path: "/v1/auth/bootstrap/status", summary: "Whether the first user still has to be created", access: public, resp: bootstrapStatusBody{}, status: 200},
		{method: "POST", path: "/v1/auth/bootstrap", summary: "Create the first user (platform administrator) and their organization", access: public,
			body: identity.Credentials{}, resp: identity.NewAccount{}, status: 201, errors: []int{409}},
		{method: "POST", path: "/v1/auth/register", summary: "Create a user with their own organization", access: public,
			body: identity.Credentials{}, resp: identity.NewAccount{}, status: 201, errors: []int{403, 409}},
		{method: "POST", path: "/v1/auth/login", summary: "Log in: a 15-minute access token and a refresh token, or an MFA challenge", access: public,
			description: "20 attempts a minute per client address; 5 failed attempts lock the account for the rest of a 15-minute window (429).",
			body:        identity.Credentials{}, resp: loginBody{}, status: 200, errors: []int{401}},
		{method: "POST", path: "/v1/auth/refresh", summary: "Rotate a refresh token for a new session", access: public,
			body: refreshRequest{}, resp: identity.Session{}, status: 200, errors: []int{401}},
		{method: "POST", path: "/v1/auth/logout", summary: "Revoke a refresh token's family", access: public, body: refreshRequest{}, status: 204},
		{method: "POST", path: "/v1/auth/mfa/challenge", summary: "Finish a login with a TOTP code", access: public,
			body: identity.MFAChallengeAnswer{}, resp: identity.Session{}, status: 200, errors: []int{401}},
		{method: "GET", path: "/v1/auth/mfa/status", summary: "The caller's MFA state", access: sessionOnly, resp: identity.MFAStatus{}, status: 200},
		{method: "POST", path: "/v1/auth/mfa/enroll", summary: "Start MFA enrollment: a TOTP secret", access: sessionOnly, resp: identity.MFAEnrollment{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/auth/mfa/verify", summary: "Turn MFA on with a code", access: sessionOnly, body: codeRequest{}, resp: identity.MFAStatus{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/auth/mfa/disable", summary: "Turn MFA off with a code", access: sessionOnly, body: codeRequest{}, resp: identity.MFAStatus{}, status: 200, errors: []int{409}},

		// Device authorization (RFC 8628): `shardform login` without a password.
		{method: "POST", path: "/v1/auth/device", summary: "Start a device login: a device code to poll with and a user code to approve", access: public,
			description: "`client_name` (1–100 characters) names the API token the device receives; `scopes` (at least one, each a permission of the catalog) are its scopes, capped at approval by what the approver holds. " +
				"The user code (8 characters without 0, O, 1 and I, shown as XXXX-XXXX) is valid `expires_in` seconds (600); poll `POST /v1/auth/device/token` every `interval` seconds (5). 20 starts a minute per client address (429).",
			body: identity.DeviceRequest{}, resp: identity.DeviceAuthorization{}, status: 200},
		{method: "POST", path: "/v1/auth/device/token", summary: "Poll a device login: the API token once approved (answered once)", access: public,
			description: "While the login is not approved: 400 `{\"error\": \"authorization_pending\"}`; polled sooner than the interval: `slow_down` (the interval grows by 5 s); " +
				"after 10 minutes: `expired_token`; denied: `access_denied`; an unknown or already delivered device code: `invalid_grant` (RFC 8628 §3.5). " +
				"Once approved: the API token as `POST /v1/api-tokens` answers it, with its secret, minted at this poll for the approver in the approved organization and named after `client_name`; every later poll is `invalid_grant`.",
			body: identity.DeviceTokenRequest{}, resp: identity.APIToken{}, status: 200},
		{method: "GET", path: "/v1/auth/device", summary: "What a user code asks for, before approving it", access: sessionOnly,
			description: "404 for an unknown user code, 400 for an expired one, 409 once it is approved or denied.",
			query:       []queryParam{{name: "user_code", description: "The code the device shows (any case, the dash optional)."}},
			resp:        identity.DevicePending{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/auth/device/approve", summary: "Approve a device login for one of your organizations", access: sessionOnly,
			description: "An API token gets 403 (`an API token cannot approve a device; sign in`). An organization you are not a member of is 404; a scope you do not hold there is 403 naming it; " +
				"an unknown user code is 404, an expired one 400, one already approved or denied 409.",
			body: identity.DeviceApproveRequest{}, resp: identity.DeviceApproval{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/auth/device/deny", summary: "Deny a device login: its next poll answers access_denied", access: sessionOnly,
			body: identity.DeviceUserCode{}, resp: identity.DeviceDenial{}, status: 200, errors: []int{409}},

		// Users.
		{method: "GET", path: "/v1/whoami", summary: "The caller: user, organization, effective scopes, credential used", access: authenticated, resp: whoamiBody{}, status: 200},
		{method: "GET", path: "/v1/users/me", summary: "The caller's account and organizations", access: authenticated, resp: identity.Me{}, status: 200},
		{method: "POST", path: "/v1/users/me/password", summary: "Change the password (revokes every session; answers a new one)", access: sessionOnly,
			body: identity.PasswordChange{}, resp: identity.Session{}, status: 200},
		{method: "GET", path: "/v1/users", summary: "List users", access: platformAdmin, resp: identity.User{}, list: true, paged: true, status: 200},
		{method: "POST", path: "/v1/users", summary: "Create a user", access: platformAdmin, body: createUserRequest{}, resp: identity.NewAccount{}, status: 201, errors: []int{409}},
		{method: "GET", path: "/v1/users/:id", summary: "Get a user", access: platformAdmin, resp: identity.User{}, status: 200},
		{method: "DELETE", path: "/v1/users/:id", summary: "Delete a user", access: platformAdmin, status: 204, errors: []int{409}},

		// API tokens.
		{method: "GET", path: "/v1/api-tokens", summary: "List the caller's API tokens", access: sessionOnly, resp: identity.APIToken{}, list: true, paged: true, status: 200},
		{method: "POST", path: "/v1/api-tokens", summary: "Create an API token (the secret is answered once)", access: sessionOnly,
			description: "`scopes` must be permissions the caller holds in the organization; the 400 for a missing or unknown scope lists the catalog.",
			body:        identity.APITokenRequest{}, resp: identity.APIToken{}, status: 201},
		{method: "DELETE", path: "/v1/api-tokens/:id", summary: "Revoke an API token", access: authenticated, status: 204, errors: []int{403},
			description: "A session revokes any of its tokens; an API token may revoke only itself (shardform logout), another is 403."},

		// Organizations, members, invites, permissions.
		{method: "GET", path: "/v1/permissions", summary: "The permission catalog and the roles' permissions", access: authenticated, resp: permissionsBody{}, status: 200},
		{method: "GET", path: "/v1/organizations", summary: "List the caller's organizations", access: authenticated, resp: identity.Organization{}, list: true, paged: true, status: 200},
		{method: "POST", path: "/v1/organizations", summary: "Create an organization (the caller becomes its owner)", access: sessionOnly, body: orgRequest{}, resp: identity.Organization{}, status: 201, errors: []int{409}},
		{method: "GET", path: "/v1/organizations/:id", summary: "Get an organization", access: authenticated, resp: identity.Organization{}, status: 200},
		{method: "PUT", path: "/v1/organizations/:id", summary: "Rename an organization", access: sessionOnly, perm: domain.PermOrganizationAdmin, body: orgRequest{}, resp: identity.Organization{}, status: 200, errors: []int{409}},
		{method: "PATCH", path: "/v1/organizations/:id", summary: "Rename an organization", access: sessionOnly, perm: domain.PermOrganizationAdmin, body: orgRequest{}, resp: identity.Organization{}, status: 200, errors: []int{409}},
		{method: "DELETE", path: "/v1/organizations/:id", summary: "Delete an organization (owners)", access: sessionOnly, status: 204, errors: []int{409}},
		{method: "GET", path: "/v1/organizations/:id/members", summary: "List members", access: authenticated, perm: domain.PermMembersRead, resp: identity.Member{}, list: true, paged: true, status: 200},
		{method: "POST", path: "/v1/organizations/:id/members", summary: "Invite a member (the token is answered once, valid 7 days)", access: sessionOnly, perm: domain.PermMembersAdmin,
			body: identity.InviteRequest{}, resp: identity.Invite{}, status: 201, errors: []int{409}},
		{method: "POST", path: "/v1/organizations/:id/members/invite", summary: "Invite a member (the reference's name of POST .../members)", access: sessionOnly, perm: domain.PermMembersAdmin,
			body: identity.InviteRequest{}, resp: identity.Invite{}, status: 201, errors: []int{409}},
		{method: "DELETE", path: "/v1/organizations/:id/members/:user_id", summary: "Remove a member (or leave)", access: sessionOnly, perm: domain.PermMembersAdmin, status: 204, errors: []int{409}},
		{method: "PUT", path: "/v1/organizations/:id/members/:user_id/role", summary: "Set a member's role", access: sessionOnly, perm: domain.PermMembersAdmin,
			body: roleRequest{}, resp: identity.Member{}, status: 200, errors: []int{409}},
		{method: "GET", path: "/v1/organizations/:id/members/:user_id/permissions", summary: "A member's role permissions, grants and effective permissions", access: authenticated, perm: domain.PermMembersRead,
			resp: identity.MemberPermissions{}, status: 200},
		{method: "PUT", path: "/v1/organizations/:id/members/:user_id/permissions", summary: "Replace a member's grants", access: sessionOnly, perm: domain.PermMembersAdmin,
			body: grantsRequest{}, resp: identity.MemberPermissions{}, status: 200},
		{method: "POST", path: "/v1/organizations/:id/members/:user_id/permissions", summary: "Add one grant (the caller must hold it)", access: sessionOnly, perm: domain.PermMembersAdmin,
			body: grantRequest{}, resp: identity.MemberPermissions{}, status: 200},
		{method: "DELETE", path: "/v1/organizations/:id/members/:user_id/permissions/:permission", summary: "Remove one grant", access: sessionOnly, perm: domain.PermMembersAdmin,
			resp: identity.MemberPermissions{}, status: 200},
		{method: "GET", path: "/v1/organizations/:id/invites", summary: "List pending invites", access: authenticated, perm: domain.PermMembersRead, resp: identity.Invite{}, list: true, paged: true, status: 200},
		{method: "DELETE", path: "/v1/organizations/:id/invites/:invite_id", summary: "Withdraw an invite", access: sessionOnly, perm: domain.PermMembersAdmin, status: 204},
		{method: "POST", path: "/v1/invites/:token/accept", summary: "Accept an invite (by the invited email)", access: sessionOnly, resp: identity.Organization{}, status: 200, errors: []int{409}},
		{method: "GET", path: "/v1/admin/audit-logs", summary: "The organization's audit log", access: authenticated, perm: domain.PermAuditRead, resp: audit.Entry{}, list: true, paged: true, status: 200},

		// Credentials.
		{method: "GET", path: "/v1/credentials", summary: "List cloud credentials (secrets never shown)", access: authenticated, perm: domain.PermCredentialsRead,
			resp: credentials.Credential{}, list: true, paged: true, status: 200, query: []queryParam{{name: "provider", description: "Only this provider's."}}},
		{method: "POST", path: "/v1/credentials", summary: "Store a credential (sealed at rest)", access: authenticated, perm: domain.PermCredentialsWrite,
			body: credentials.Input{}, resp: credentials.Credential{}, status: 201, errors: []int{409}},
		{method: "GET", path: "/v1/credentials/:id", summary: "Get a credential", access: authenticated, perm: domain.PermCredentialsRead, resp: credentials.Credential{}, status: 200},
		{method: "PUT", path: "/v1/credentials/:id", summary: "Rename a credential and/or replace its secret", access: authenticated, perm: domain.PermCredentialsWrite,
			body: credentials.Input{}, resp: credentials.Credential{}, status: 200, errors: []int{409}},
		{method: "DELETE", path: "/v1/credentials/:id", summary: "Delete a credential (409 while a live request, a managed DNS record or auto-DNS needs it)", access: authenticated, perm: domain.PermCredentialsWrite, status: 204, errors: []int{409}},
		{method: "POST", path: "/v1/credentials/:id/default", summary: "Make it its provider's default", access: authenticated, perm: domain.PermCredentialsWrite, resp: credentials.Credential{}, status: 200},
		{method: "POST", path: "/v1/credentials/:id/verify", summary: "Check the credential against the provider's API", access: authenticated, perm: domain.PermCredentialsWrite, resp: credentials.VerifyResult{}, status: 200},

		// Provisioning and nodes.
		{method: "GET", path: "/v1/provision/providers", summary: "Drivers with their regions and instance types", access: authenticated, perm: domain.PermProvisionRead, resp: providersBody{}, status: 200},
		{method: "GET", path: "/v1/provision", summary: "List provision requests", access: authenticated, perm: domain.PermProvisionRead, resp: provision.Request{}, list: true, paged: true, status: 200,
			query: []queryParam{{name: "status", description: "Only requests in this status."}, {name: "provider", description: "Only this provider's."}}},
		{method: "POST", path: "/v1/provision", summary: "Create a provision request", access: authenticated, perm: domain.PermProvisionWrite,
			description: "An `Idempotency-Key` header makes a retry answer the first request with 200; the same key with another body is 422.",
			body:        provision.CreateRequest{}, resp: provision.Request{}, status: 201, also: []int{200}, errors: []int{409, 422}},
		{method: "GET", path: "/v1/provision/:id", summary: "Get a provision request", access: authenticated, perm: domain.PermProvisionRead, resp: provision.Request{}, status: 200},
		{method: "POST", path: "/v1/provision/:id/plan", summary: "Queue a plan", access: authenticated, perm: domain.PermProvisionWrite, resp: provision.Request{}, status: 202, errors: []int{409}},
		{method: "POST", path: "/v1/provision/:id/apply", summary: "Queue the apply of the stored plan", access: authenticated, perm: domain.PermProvisionWrite,
			description: "409 when the request is not planned, while a run of it is going, or when the apply would make its node smaller than what the instances placed on it reserve (a downsize: naming each short resource). The apply run checks that fit again before Terraform runs; refused there, the run fails and the request is planned again with the reason.",
			resp:        provision.Request{}, status: 202, errors: []int{409}},
		{method: "POST", path: "/v1/provision/:id/cancel", summary: "Cancel the request's current run", access: authenticated, perm: domain.PermProvisionWrite,
			description: "Cancels the request's queued or running run (as `POST /v1/runs/{id}/cancel`; the answer's `run` is that run). A queued run is cancelled at once and the request goes back to pending, planned or applied; a running one is interrupted (Terraform stops gracefully and releases the state lock), and killed after SHARDFORM_CANCEL_GRACE, or at once with `force=true`: back to pending or planned after a plan, failed after an apply or a destroy (the error says its resources may be partial). 409 when no run is going.",
			resp:        provision.Request{}, status: 202, errors: []int{409},
			query: []queryParam{forceParam}},
		{method: "POST", path: "/v1/provision/:id/refresh", summary: "Queue a drift check (plan -refresh-only)", access: authenticated, perm: domain.PermProvisionWrite,
			description: "For an applied request: a `refresh` run compares the real infrastructure with the state (`terraform plan -refresh-only -detailed-exitcode`); it ends with `drifted` and, per drifted resource, the attributes that changed (masked values). The request stays applied; its `drift` shows the last verdict.",
			resp:        provision.Request{}, status: 202, errors: []int{409}},
		{method: "GET", path: "/v1/provision/:id/runs", summary: "The request's runs, newest first", access: authenticated, perm: domain.PermProvisionRead,
			resp: provision.Run{}, list: true, paged: true, status: 200,
			query: []queryParam{{name: "kind", description: "Only runs of this kind.", enum: []string{"plan", "apply", "destroy", "refresh"}}}},
		{method: "GET", path: "/v1/runs/:id", summary: "Get a run", access: authenticated, perm: domain.PermProvisionRead, resp: provision.Run{}, status: 200},
		{method: "GET", path: "/v1/runs/:id/logs", summary: "Terraform output of one run", access: authenticated, perm: domain.PermProvisionRead,
			description: "As `GET /v1/provision/{id}/logs`, for one run; with `follow=1` the `end` event carries the run's `status`, `error` and `exit_code`.",
			resp:        logsBody{}, stream: true, status: 200,
			query: []queryParam{{name: "after", kind: "integer", description: "Only lines after this log id."}, {name: "follow", description: "1 or true: stream Server-Sent Events.", enum: []string{"0", "1", "true", "false"}}}},
		{method: "GET", path: "/v1/runs/:id/plan", summary: "A plan run's JSON plan, sensitive values masked", access: authenticated, perm: domain.PermProvisionRead,
			description: "The JSON plan of `terraform show -json` (terraform-json's Plan) with every value Terraform marks sensitive replaced by \"(sensitive value)\", root variables masked and the configuration left out. A worker renders it as the plan succeeds (SHARDFORM_PLAN_RENDER=eager, the default; on-demand: when first asked for); a call before that queues the render and waits up to 20 s, then answers 202 `{\"status\": \"rendering\"}` with Retry-After. Once rendered, the run's `changes` carry each resource's masked `before` and `after`, no-op changes included. 409 for a run that is not a succeeded plan, or whose saved plan was dropped (applied, superseded or older than 7 days) before it was rendered.",
			resp:        planBody{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/runs/:id/cancel", summary: "Cancel a run", access: authenticated, perm: domain.PermProvisionWrite,
			description: "See `POST /v1/provision/{id}/cancel`. 409 for a run that has finished.",
			resp:        provision.Run{}, status: 202, errors: []int{409}, query: []queryParam{forceParam}},
		{method: "DELETE", path: "/v1/provision/:id", summary: "Queue a destroy", access: authenticated, perm: domain.PermProvisionWrite, resp: provision.Request{}, status: 202, errors: []int{409},
			description: "The request's node is cordoned while it is destroyed; a node that still holds instances is 409 unless `force=true` (its instances are deleted with it).",
			query:       []queryParam{deleteForceParam}},
		{method: "GET", path: "/v1/provision/:id/logs", summary: "Terraform output of the request's runs", access: authenticated, perm: domain.PermProvisionRead,
			description: "With `follow=1` the answer is a Server-Sent Events stream (`text/event-stream`): `log` events (each with its log id as the event id), then one `end` event with the request's status; an `error` event (`error` and `status` fields) ends it early, e.g. 404 when the request is deleted. While no line arrives, a `: heartbeat` comment is sent every 15 s.",
			resp:        logsBody{}, stream: true, status: 200,
			query: []queryParam{{name: "after", kind: "integer", description: "Only lines after this log id."}, {name: "follow", description: "1 or true: stream Server-Sent Events.", enum: []string{"0", "1", "true", "false"}}}},
		{method: "GET", path: "/v1/nodes", summary: "List nodes", access: authenticated, perm: domain.PermNodesRead, resp: provision.Node{}, list: true, paged: true, status: 200,
			query: []queryParam{{name: "status", description: "Only nodes in this status."}, {name: "provider", description: "Only this provider's."}}},
		{method: "GET", path: "/v1/nodes/:id", summary: "Get a node", access: authenticated, perm: domain.PermNodesRead, resp: provision.Node{}, status: 200},
		{method: "PUT", path: "/v1/nodes/:id", summary: "Rename, cordon or relabel a node", access: authenticated, perm: domain.PermNodesWrite, body: provision.NodeUpdate{}, resp: provision.Node{}, status: 200, errors: []int{409}},
		{method: "DELETE", path: "/v1/nodes/:id", summary: "Delete a node not made by a provision request", access: authenticated, perm: domain.PermNodesWrite, status: 204, errors: []int{409},
			description: "A node that still holds instances is 409 unless `force=true` (its instances are deleted with it).",
			query:       []queryParam{deleteForceParam}},
		{method: "POST", path: "/v1/nodes/:id/resize", summary: "Change the node's instance type (queues a plan run)", access: authenticated, perm: domain.PermNodesWrite,
			description: "Changes the desired instance type of the node's provision request and queues a plan run (the answer); apply it with `POST /v1/provision/{id}/apply`, or pass `apply: true` to apply as soon as the plan succeeds. The node's capacity changes when the apply succeeds. 400 naming `instance_type` for a type the provider does not offer in the node's region (listing the region's types); 409 when the instances placed on the node would not fit the new type (naming each short resource), naming `disk` for a Hetzner type with a smaller disk than the node's (Hetzner cannot shrink a disk), for a node not made by a provision request, while a run of its request is going, or while a power action on the node is queued or running (naming it).",
			body:        provision.ResizeRequest{}, resp: provision.Run{}, status: 202, errors: []int{409}},
		{method: "GET", path: "/v1/nodes/:id/firewall/rules", summary: "The node's inbound firewall rules", access: authenticated, perm: domain.PermNodesRead, resp: firewallRulesBody{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/nodes/:id/firewall/rules", summary: "Add an inbound rule (queues a plan run)", access: authenticated, perm: domain.PermNodesWrite,
			description: "The rule joins the node's desired configuration, rendered into its driver's Terraform (hcloud_firewall, the aws_security_group's ingress, the local driver's terraform_data input); the answer holds the rule and the plan run it queued. `protocol` tcp, udp or icmp (ping); `port` \"25565\" or \"27015-27030\" (1–65535), none for icmp; `source_ips` CIDRs (default: anywhere, IPv4 and IPv6); at most 50 rules (the 51st is 400 naming `rules`). 409 for a rule already there, or while a power action on the node is queued or running (naming it).",
			body:        provision.RuleInput{}, resp: provision.FirewallChange{}, status: 202, errors: []int{409}},
		{method: "DELETE", path: "/v1/nodes/:id/firewall/rules", summary: "Remove the rule the body describes (queues a plan run)", access: authenticated, perm: domain.PermNodesWrite,
			description: "The body names the rule as it was added (protocol, port, source_ips). SSH and ping stay open until removed like any rule.",
			body:        provision.RuleInput{}, resp: provision.FirewallChange{}, status: 202, errors: []int{409}},
		{method: "DELETE", path: "/v1/nodes/:id/firewall/rules/:rule_id", summary: "Remove a rule by id (queues a plan run)", access: authenticated, perm: domain.PermNodesWrite,
			resp: provision.FirewallChange{}, status: 202, errors: []int{409}},

		// Power actions on nodes (nodeops).
		{method: "POST", path: "/v1/nodes/:id/power/start", summary: "Start (power on) a node", access: authenticated, perm: domain.PermNodesWrite,
			description: "Queues a `start` action (a `node_action` job on the `nodes` queue) and answers it (202); the cloud is called by a worker (Hetzner: `Server.Poweron`; AWS: `StartInstances`; local: the machine row). Follow it with `GET /v1/nodes/{id}/actions` or `.../power/status`. 409 naming the action when the node has one queued or running, or naming the run while a Terraform run of its provision request is queued or running; 422 for a node whose provider has no power actions or that has no credential.",
			resp:        nodeops.Action{}, status: 202, errors: []int{409, 422}},
		{method: "POST", path: "/v1/nodes/:id/power/stop", summary: "Stop a node: graceful shutdown, then a power-off", access: authenticated, perm: domain.PermNodesWrite,
			description: "A graceful shutdown (Hetzner: `Server.Shutdown`; AWS: `StopInstances`), and a hard power-off (`Server.Poweroff`; `StopInstances` with `Force`) when the node is not off after SHARDFORM_STOP_TIMEOUT (60 s); `force=true` powers off at once. While stopped, the node's status reads `stopped`: suggest-fit and placement skip it.",
			resp:        nodeops.Action{}, status: 202, errors: []int{409, 422},
			query: []queryParam{{name: "force", kind: "boolean", description: "true: power off at once, without a graceful shutdown."}}},
		{method: "POST", path: "/v1/nodes/:id/power/reboot", summary: "Reboot a node", access: authenticated, perm: domain.PermNodesWrite,
			description: "Hetzner: `Server.Reboot`; AWS: `RebootInstances`. 409 for a node shardform records as stopped (start it instead).",
			resp:        nodeops.Action{}, status: 202, errors: []int{409, 422}},
		{method: "GET", path: "/v1/nodes/:id/power/status", summary: "The node's power state, from its cloud, and the latest action", access: authenticated, perm: domain.PermNodesRead,
			description: "Asks the cloud now (`power_state`, and the cloud's own word in `provider_state`); `recorded_power_state` is what shardform records, corrected by a reading that differs while no action is going. A cloud that cannot be asked gives `power_state: unknown` and `error`. An action whose worker was lost (its job ended without an outcome, or no heartbeat for 30 s) is ended `failed` (\"worker lost\") first, so the node takes new actions.",
			resp:        nodeops.PowerStatus{}, status: 200, errors: []int{422}},
		{method: "GET", path: "/v1/nodes/:id/actions", summary: "The node's power actions, newest first", access: authenticated, perm: domain.PermNodesRead,
			resp: nodeops.Action{}, list: true, paged: true, status: 200},

		// Instances.
		{method: "GET", path: "/v1/instances", summary: "List game-server instances", access: authenticated, perm: domain.PermNodesRead, resp: placement.Instance{}, list: true, paged: true, status: 200,
			query: []queryParam{{name: "node", kind: "uuid", description: "Only instances on this node."}, {name: "template", description: "Only instances of this template."}}},
		{method: "POST", path: "/v1/instances", summary: "Place an instance on a node (checked under a lock)", access: authenticated, perm: domain.PermNodesWrite,
			body: placement.CreateRequest{}, resp: placement.Instance{}, status: 201, errors: []int{409}},
		{method: "GET", path: "/v1/instances/:id", summary: "Get an instance", access: authenticated, perm: domain.PermNodesRead, resp: placement.Instance{}, status: 200},
		{method: "DELETE", path: "/v1/instances/:id", summary: "Remove an instance", access: authenticated, perm: domain.PermNodesWrite, status: 204},
		{method: "POST", path: "/v1/instances/:id/move", summary: "Move an instance to another node", access: authenticated, perm: domain.PermNodesWrite,
			body: placement.MoveRequest{}, resp: placement.Instance{}, status: 200, errors: []int{409}},

		// DNS.
		{method: "GET", path: "/v1/dns/zones", summary: "The Cloudflare zones a credential can see (cached for a minute)", access: authenticated, perm: domain.PermDNSRead,
			resp: dnsZonesBody{}, status: 200, errors: []int{422, 503},
			query: []queryParam{{name: "credential_id", kind: "uuid", description: "A cloudflare credential; default: the organization's default one."}}},
		{method: "GET", path: "/v1/dns/zones/:zone_id/records", summary: "Every record of a zone as Cloudflare has it now, each marked managed or not", access: authenticated, perm: domain.PermDNSRead,
			description: "Read from Cloudflare (every page) at each call; `managed` is true for records carrying this organization's marker (`shardform:<organization id>:<record id>` in the comment), with their shardform id.",
			resp:        dns.ZoneRecord{}, list: true, paged: true, status: 200, errors: []int{422, 503},
			query: []queryParam{{name: "credential_id", kind: "uuid", description: "A cloudflare credential; default: the organization's default one."}}},
		{method: "GET", path: "/v1/dns/records", summary: "The records shardform manages for the organization", access: authenticated, perm: domain.PermDNSRead,
			resp: dns.Record{}, list: true, paged: true, status: 200,
			query: []queryParam{{name: "zone", description: "Only this zone's (a zone id)."}, {name: "type", description: "Only this type.", enum: dns.Types},
				{name: "name", description: "Only this fully qualified name."}, {name: "node", kind: "uuid", description: "Only this node's."},
				{name: "status", description: "Only records in this status (deleted ones are listed only this way).", enum: []string{"pending", "synced", "failed", "deleting", "deleted"}}}},
		{method: "POST", path: "/v1/dns/records", summary: "Create a record (queued: status pending, then synced or failed)", access: authenticated, perm: domain.PermDNSWrite,
			description: "The record is written and its `dns_sync` job queued in one transaction. A record of the same name and type in the zone without this organization's marker is 409 naming it, unless `adopt: true` (then it is taken over); a CNAME never shares its name.",
			body:        dns.CreateRequest{}, resp: dns.Record{}, status: 202, errors: []int{409, 422, 503}},
		{method: "GET", path: "/v1/dns/records/:id", summary: "Get a managed record", access: authenticated, perm: domain.PermDNSRead, resp: dns.Record{}, status: 200},
		{method: "PUT", path: "/v1/dns/records/:id", summary: "Change a record (queued)", access: authenticated, perm: domain.PermDNSWrite,
			body: dns.UpdateRequest{}, resp: dns.Record{}, status: 202, errors: []int{409}},
		{method: "DELETE", path: "/v1/dns/records/:id", summary: "Delete a record (queued: deleting, then deleted)", access: authenticated, perm: domain.PermDNSWrite,
			description: "The record is deleted from Cloudflare only if it still carries shardform's marker.",
			resp:        dns.Record{}, status: 202},
		{method: "GET", path: "/v1/dns/auto-config", summary: "The organization's auto-DNS setting", access: authenticated, perm: domain.PermDNSRead, resp: dns.AutoConfig{}, status: 200},
		{method: "PUT", path: "/v1/dns/auto-config", summary: "Replace the auto-DNS setting", access: authenticated, perm: domain.PermDNSWrite,
			description: "With `enabled`, every node an apply registers gets an A record (and an AAAA record with `ipv6` when it has IPv6) named by `name_template` ({name}, {region}, {provider}, {org}) in the zone; a changed address updates it, destroying the node deletes it.",
			body:        dns.AutoConfigRequest{}, resp: dns.AutoConfig{}, status: 200, errors: []int{422, 503}},
		{method: "POST", path: "/v1/dns/reconcile", summary: "Queue a drift check of the organization's managed records now", access: authenticated, perm: domain.PermDNSWrite,
			resp: dns.JobInfo{}, status: 202},
		{method: "GET", path: "/v1/dns/reconcile", summary: "The latest drift check's report", access: authenticated, perm: domain.PermDNSRead, resp: dns.Report{}, status: 200},
		// Scheduling: cordon, drain, migrate.
		{method: "POST", path: "/v1/nodes/:id/cordon", summary: "Cordon a node: it takes no new instances", access: authenticated, perm: domain.PermNodesWrite,
			description: "A ready node becomes `cordoned`: placements, moves and drains refuse it and suggest-fit rejects it (`cordoned`); its instances stay. A cordoned node is answered unchanged; a stopped (powered-off) node is cordoned too and shows `stopped` until started; a node in maintenance is 409.",
			resp:        provision.Node{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/nodes/:id/uncordon", summary: "Uncordon a node: it takes instances again", access: authenticated, perm: domain.PermNodesWrite,
			description: "A cordoned node becomes `ready` (a stopped one once started); a ready node is answered unchanged. 409 for a node in maintenance, or one a drain or migration is emptying (cancel it first).",
			resp:        provision.Node{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/nodes/:id/drain", summary: "Drain a node: cordon it and move its instances to other nodes", access: authenticated, perm: domain.PermNodesWrite,
			description: "Cordons the node and queues a `node_drain` job that moves every instance on it, largest first, to other ready nodes of the same organization, provider and region, each to the best node by suggest-fit's scoring (`strategy`: binpack, the default, or spread) under the lock and fit check of `POST /v1/instances/{id}/move`. Instances that fit nowhere stay, listed with the reason (`partial`). The answer is the migration record (202; follow it with `GET /v1/migrations/{id}`). With `dry_run: true` the answer is 200 with the plan of moves (`status: planned`, no id) and nothing changes. 409 while another drain or migration of the node is queued or running (one whose job ended without an outcome — cancelled in River UI, discarded, deleted — is ended first, failed, and blocks the node no longer).",
			body:        placement.DrainRequest{}, optionalBody: true, resp: placement.Migration{}, status: 202, also: []int{200}, errors: []int{409}},
		{method: "POST", path: "/v1/nodes/:id/migrate", summary: "Move every instance of a node to one other node, all or nothing", access: authenticated, perm: domain.PermNodesWrite,
			description: "In one transaction under the locks of both nodes: the target must be ready and hold all the instances together, else nothing moves and the 409 names each short resource and the instances that do not fit. The node is cordoned. The answer is the migration record, succeeded.",
			body:        placement.MigrateRequest{}, resp: placement.Migration{}, status: 201, errors: []int{409}},
		{method: "GET", path: "/v1/migrations", summary: "List drains and migrations, newest first", access: authenticated, perm: domain.PermNodesRead,
			resp: placement.Migration{}, list: true, paged: true, status: 200,
			query: []queryParam{{name: "node", kind: "uuid", description: "Only those of this node (drained, migrated or migrated to)."},
				{name: "status", enum: []string{"queued", "running", "succeeded", "partial", "failed", "cancelled"}},
				{name: "kind", enum: []string{"drain", "migrate"}}}},
		{method: "GET", path: "/v1/migrations/:id", summary: "A drain or migration with its moves (done, left, failures)", access: authenticated, perm: domain.PermNodesRead,
			resp: placement.Migration{}, status: 200},
		{method: "POST", path: "/v1/migrations/:id/cancel", summary: "Cancel a drain: it stops before its next move", access: authenticated, perm: domain.PermNodesWrite,
			description: "A queued drain is cancelled at once; a running one stops before its next move (`cancel_requested`, then `cancelled`). The moves made stay made and the node stays cordoned. A running drain whose job ended without an outcome is cancelled at once. 409 once it has ended.",
			resp:        placement.Migration{}, status: 202, errors: []int{409}},

		// Capacity planner.
		{method: "GET", path: "/v1/planner/templates", summary: "Workload templates", access: authenticated, perm: domain.PermPlannerRead, resp: planner.Template{}, list: true, paged: true, status: 200},
		{method: "GET", path: "/v1/planner/pricing", summary: "The pricing catalog", access: authenticated, perm: domain.PermPlannerRead, resp: pricingBody{}, paged: true, status: 200,
			query: []queryParam{{name: "provider"}, {name: "region"}, {name: "arch", enum: []string{"x86", "arm"}}, {name: "cpu_kind", enum: []string{"shared", "dedicated"}},
				{name: "min_vcpu", kind: "integer"}, {name: "min_memory_gb", kind: "integer"}, {name: "include_deprecated", kind: "boolean"}}},
		{method: "POST", path: "/v1/planner/recommend", summary: "Rank single-type fleets for a requirement", access: authenticated, perm: domain.PermPlannerRead,
			body: capacity.RecommendRequest{}, resp: planner.Result{}, status: 200},
		{method: "POST", path: "/v1/planner/recommend-for-template", summary: "Recommend for a workload template", access: authenticated, perm: domain.PermPlannerRead,
			body: capacity.TemplateRequest{}, resp: capacity.TemplateResult{}, status: 200},
		{method: "POST", path: "/v1/planner/suggest-fit", summary: "Where one more instance fits among the nodes", access: authenticated, perm: domain.PermPlannerRead,
			body: capacity.FitRequest{}, resp: capacity.FitResult{}, status: 200},
		{method: "POST", path: "/v1/planner/pricing/refresh", summary: "Queue a live price read", access: authenticated, perm: domain.PermPlannerWrite, resp: capacity.JobInfo{}, status: 202, errors: []int{422}},
		{method: "POST", path: "/v1/planner/fleet-report", summary: "Queue a fleet report", access: authenticated, perm: domain.PermPlannerWrite,
			body: capacity.FleetReportRequest{}, optionalBody: true, resp: capacity.JobInfo{}, status: 202},
		{method: "GET", path: "/v1/planner/fleet-report", summary: "The latest fleet report", access: authenticated, perm: domain.PermPlannerRead, resp: planner.FleetReport{}, status: 200, errors: []int{404}},

		// Nodes that are born trusted: registration tokens and the agents' routes.
		{method: "POST", path: "/v1/nodes/register-token", summary: "Mint a node registration token (the secret is answered once)", access: authenticated, perm: domain.PermNodesWrite,
			body: agent.TokenRequest{}, optionalBody: true, resp: agent.RegistrationToken{}, status: 201},
		{method: "GET", path: "/v1/nodes/register-tokens", summary: "List registration tokens", access: authenticated, perm: domain.PermNodesWrite, resp: agent.RegistrationToken{}, list: true, paged: true, status: 200},
		{method: "DELETE", path: "/v1/nodes/register-tokens/:id", summary: "Delete a registration token", access: authenticated, perm: domain.PermNodesWrite, status: 204},
		{method: "GET", path: "/v1/admin/agents", summary: "Nodes with an agent: last seen, version", access: authenticated, perm: domain.PermNodesRead, resp: agent.AgentInfo{}, list: true, paged: true, status: 200},
		{method: "GET", path: "/v1/nodes/:id/inventory", summary: "The node's inventory from its latest heartbeat", access: authenticated, perm: domain.PermNodesRead, resp: agent.Inventory{}, status: 200},
		{method: "GET", path: "/v1/nodes/:id/inventory/system", summary: "The system part of the node's inventory", access: authenticated, perm: domain.PermNodesRead, resp: agent.Inventory{}, status: 200},
		{method: "GET", path: "/v1/nodes/:id/inventory/network", summary: "The network part of the node's inventory", access: authenticated, perm: domain.PermNodesRead, resp: agent.Inventory{}, status: 200},
		{method: "GET", path: "/v1/nodes/:id/inventory/disks", summary: "The disks part of the node's inventory", access: authenticated, perm: domain.PermNodesRead, resp: agent.Inventory{}, status: 200},
		{method: "POST", path: "/v1/agent/register", summary: "Register a node with a registration token: its node, agent token, host certificates and SSH trust files", access: registration,
			body: agent.RegisterRequest{}, resp: agent.Registration{}, status: 201, errors: []int{409}},
		{method: "GET", path: "/v1/agent/bootstrap.sh", summary: "A POSIX shell script doing what shardform node join and refresh do, with curl (no secret in it)", access: public, produces: "text/x-shellscript", status: 200},
		{method: "GET", path: "/v1/agent/node", summary: "The agent's own node", access: agentToken, resp: agent.NodeRecord{}, status: 200},
		{method: "GET", path: "/v1/agent/ssh/ca-public-key", summary: "The trusted user CA keys (ETag; 304 with If-None-Match)", access: agentToken, produces: "text/plain", status: 200, also: []int{304}},
		{method: "GET", path: "/v1/agent/ssh/krl", summary: "The key revocation list (ETag; 304 with If-None-Match)", access: agentToken, produces: "application/octet-stream", status: 200, also: []int{304}},
		{method: "GET", path: "/v1/agent/ssh/known-hosts", summary: "The @cert-authority lines of the host CA (ETag; 304 with If-None-Match)", access: agentToken, produces: "text/plain", status: 200, also: []int{304}},
		{method: "POST", path: "/v1/agent/host-certificates", summary: "Renew the node's host certificates (only for the host keys it registered with: 403 for another key)", access: agentToken, body: agent.RenewRequest{}, resp: agent.Renewal{}, status: 200, errors: []int{403, 503}},
		{method: "POST", path: "/v1/agent/heartbeat", summary: "A heartbeat with the node's inventory", access: agentToken, body: agent.Heartbeat{}, optionalBody: true, resp: agent.HeartbeatAnswer{}, status: 200},
		{method: "POST", path: "/v1/agent/token/rotate", summary: "Replace the agent token (the old one stops working)", access: agentToken, resp: agent.RotatedToken{}, status: 200},

		// SSH certificate authority.
		{method: "GET", path: "/v1/ssh/ca-public-key", summary: "The organization's trusted user CA keys (TrustedUserCAKeys file)", access: public, produces: "text/plain", status: 200, query: orgQuery, errors: []int{400, 404}},
		{method: "GET", path: "/v1/ssh/known-hosts", summary: "@cert-authority lines for the organization's host CA keys", access: public, produces: "text/plain", status: 200, query: orgQuery, errors: []int{400, 404}},
		{method: "GET", path: "/v1/ssh/krl", summary: "The organization's key revocation list (RevokedKeys file)", access: public, produces: "application/octet-stream", status: 200, query: orgQuery, errors: []int{400, 404}},
		{method: "GET", path: "/v1/ssh/host-krl", summary: "The organization's host key revocation list (RevokedHostKeys file): host certificates of deleted nodes", access: public, produces: "application/octet-stream", status: 200, query: orgQuery, errors: []int{400, 404}},
		{method: "POST", path: "/v1/ssh/certificate", summary: "Sign a user certificate", access: authenticated, perm: domain.PermSSHSign,
			body: sshsign.SignRequest{}, resp: sshsign.Signed{}, status: 200, errors: []int{503}},
		{method: "GET", path: "/v1/ssh/certificates", summary: "List user certificates (yours; all with ssh:admin)", access: authenticated, perm: domain.PermSSHSign, resp: sshsign.Certificate{}, list: true, paged: true, status: 200,
			query: []queryParam{{name: "user", kind: "uuid"}, {name: "node", kind: "uuid"}, {name: "state", enum: certState}}},
		{method: "GET", path: "/v1/ssh/certificates/:id", summary: "Get a certificate (yours; any with ssh:admin)", access: authenticated, perm: domain.PermSSHSign, resp: sshsign.Certificate{}, status: 200},
		{method: "POST", path: "/v1/ssh/certificates/:id/revoke", summary: "Revoke a certificate (yours; any with ssh:admin)", access: authenticated, perm: domain.PermSSHSign, resp: sshsign.Certificate{}, status: 200, errors: []int{409}},
		{method: "POST", path: "/v1/ssh/host-certificate", summary: "Sign a host certificate for a node", access: authenticated, perm: domain.PermSSHAdmin,
			body: sshsign.HostSignRequest{}, resp: sshsign.HostSigned{}, status: 200, errors: []int{503}},
		{method: "GET", path: "/v1/ssh/host-certificates", summary: "List host certificates", access: authenticated, perm: domain.PermSSHAdmin, resp: sshsign.HostCertificate{}, list: true, paged: true, status: 200,
			query: []queryParam{{name: "node", kind: "uuid"}}},
		{method: "GET", path: "/v1/ssh/policy", summary: "The organization's signing policy", access: authenticated, perm: domain.PermSSHAdmin, resp: sshca.Policy{}, status: 200},
		{method: "PUT", path: "/v1/ssh/policy", summary: "Replace the signing policy", access: authenticated, perm: domain.PermSSHAdmin, body: sshca.Policy{}, resp: sshca.Policy{}, status: 200},
		{method: "GET", path: "/v1/ssh/ca/keys", summary: "User CA keys", access: authenticated, perm: domain.PermSSHAdmin, resp: caKeysBody{}, status: 200},
		{method: "POST", path: "/v1/ssh/ca/keys", summary: "Generate the user CA key", access: authenticated, perm: domain.PermSSHAdmin, body: caKeyBody{}, optionalBody: true, resp: sshsign.CAKey{}, status: 201, errors: []int{409}},
		{method: "POST", path: "/v1/ssh/ca/keys/rotate", summary: "Rotate the user CA key", access: authenticated, perm: domain.PermSSHAdmin, body: caKeyBody{}, optionalBody: true, resp: sshsign.CAKey{}, status: 201},
		{method: "POST", path: "/v1/ssh/ca/keys/:id/retire", summary: "Retire a user CA key", access: authenticated, perm: domain.PermSSHAdmin, resp: sshsign.CAKey{}, status: 200, errors: []int{409}},
		{method: "GET", path: "/v1/ssh/host-ca/keys", summary: "Host CA keys", access: authenticated, perm: domain.PermSSHAdmin, resp: caKeysBody{}, status: 200},
		{method: "POST", path: "/v1/ssh/host-ca/keys/rotate", summary: "Rotate the host CA key", access: authenticated, perm: domain.PermSSHAdmin, body: caKeyBody{}, optionalBody: true, resp: sshsign.CAKey{}, status: 201},
		{method: "POST", path: "/v1/ssh/host-ca/keys/:id/retire", summary: "Retire a host CA key", access: authenticated, perm: domain.PermSSHAdmin, resp: sshsign.CAKey{}, status: 200, errors: []int{409}},
		// Terraform state: shardform as Terraform's http backend.
		{method: "GET", path: "/v1/terraform/state/:id", summary: "A provision request's current Terraform state (decrypted), or 204 when it has none", access: stateClient, perm: domain.PermProvisionRead,
			description: "Runs read and write it with their credential; users read it with `provision:read` (HTTP Basic with an API token as the password, or a bearer token).",
			resp:        map[string]any{}, status: 200, also: []int{204}},
		{method: "POST", path: "/v1/terraform/state/:id", summary: "Write a new state version (runs only; `?ID=` the lock id)", access: stateClient,
			description: "Refused (409) when the lineage differs, the serial goes backwards, or another lock holds the state. Every write is a new version sealed with AES-256-GCM.",
			body:        map[string]any{}, status: 200, errors: []int{409, 413}},
		{method: "POST", path: "/v1/terraform/state/:id/lock", summary: "Lock the state (Terraform's LockInfo); 423 with the holder's LockInfo when locked", access: stateClient,
			body: map[string]any{}, status: 200, errors: []int{409, 423}},
		{method: "DELETE", path: "/v1/terraform/state/:id/lock", summary: "Unlock the state; 409 with the holder's LockInfo when another lock holds it", access: stateClient,
			optionalBody: true, body: map[string]any{}, status: 200, errors: []int{409}},
		{method: "GET", path: "/v1/terraform/state/custom/:name", summary: "Your own Terraform's state (custom states), or 204", access: stateClient, perm: domain.PermStateWrite,
			resp: map[string]any{}, status: 200, also: []int{204}},
		{method: "POST", path: "/v1/terraform/state/custom/:name", summary: "Write your own Terraform's state (`?ID=` the lock id)", access: stateClient, perm: domain.PermStateWrite,
			body: map[string]any{}, status: 200, errors: []int{409, 413}},
		{method: "POST", path: "/v1/terraform/state/custom/:name/lock", summary: "Lock your own state; 423 with the holder's LockInfo when locked", access: stateClient, perm: domain.PermStateWrite,
			body: map[string]any{}, status: 200, errors: []int{409, 423}},
		{method: "DELETE", path: "/v1/terraform/state/custom/:name/lock", summary: "Unlock your own state (an empty body force-unlocks)", access: stateClient, perm: domain.PermStateWrite,
			optionalBody: true, body: map[string]any{}, status: 200, errors: []int{409}},
		{method: "GET", path: "/v1/provision/:id/state/versions", summary: "The versions of a provision request's state, newest first", access: authenticated, perm: domain.PermProvisionRead,
			resp: stateVersionsBody{}, status: 200},
		{method: "GET", path: "/v1/provision/:id/state/versions/:n", summary: "Download one state version (decrypted)", access: authenticated, perm: domain.PermProvisionRead,
			produces: "application/json", status: 200},
	}
}
