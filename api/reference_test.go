package api_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestAPITokenCannotManageTheOrganization: tokens never manage
// organizations, even with organization:admin among their scopes.
func TestAPITokenCannotManageTheOrganization(t *testing.T) {
	b := setup(t)
	owner := b.bootstrap("owner@example.com")
	tok := b.apiToken(owner, "organization:admin", "members:admin")
	path := "/v1/organizations/" + owner.orgID
	for _, method := range []string{"PUT", "PATCH", "DELETE"} {
		r := b.expect(req{method: method, path: path, token: tok, body: map[string]string{"name": "taken over"}}, 403)
		if !strings.Contains(r.errMsg(), "API tokens cannot manage organizations") {
			t.Errorf("%s: %s", method, r.Raw)
		}
	}
	got := b.expect(req{method: "GET", path: path, token: owner.access}, 200)
	if got.str("name") == "taken over" {
		t.Errorf("the token renamed the organization: %s", got.Raw)
	}
	b.expect(req{method: "PATCH", path: path, token: owner.access, body: map[string]string{"name": "renamed"}}, 200)
}

// TestUsersMeAndWhoamiAgreeOnAdmin: a platform admin's token carries no
// platform-admin rights, and both endpoints say so.
func TestUsersMeAndWhoamiAgreeOnAdmin(t *testing.T) {
	b := setup(t)
	admin := b.bootstrap("admin@example.com")
	tok := b.apiToken(admin, "nodes:read")
	for _, tc := range []struct {
		name, token, credential string
		admin                   bool
	}{
		{"session", admin.access, "access_token", true},
		{"api token", tok, "api_token", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			me := b.expect(req{method: "GET", path: "/v1/users/me", token: tc.token}, 200)
			who := b.expect(req{method: "GET", path: "/v1/whoami", token: tc.token}, 200)
			user, _ := who.Body["user"].(map[string]any)
			if me.Body["is_admin"] != tc.admin || user["is_admin"] != tc.admin {
				t.Errorf("is_admin: /users/me %v, /whoami %v; want %v", me.Body["is_admin"], user["is_admin"], tc.admin)
			}
			if me.str("credential") != tc.credential || who.str("auth_method") != tc.credential {
				t.Errorf("credential %q, auth_method %q; want %q", me.str("credential"), who.str("auth_method"), tc.credential)
			}
			if (tc.credential == "api_token") != (me.str("api_token_id") != "") || me.str("api_token_id") != who.str("api_token_id") {
				t.Errorf("api_token_id: /users/me %q, /whoami %q", me.str("api_token_id"), who.str("api_token_id"))
			}
		})
	}
	// Through the token, the admin-only user list is refused.
	b.expect(req{method: "GET", path: "/v1/users", token: tok}, 403)
}

// TestReferenceNames: the Shardlyn reference's paths and fields work.
func TestReferenceNames(t *testing.T) {
	b := setup(t)
	owner := b.bootstrap("owner@example.com")

	inv := b.expect(req{method: "POST", path: orgPath(owner.orgID, "members/invite"), token: owner.access,
		body: map[string]string{"email": "bob@example.com", "role": "member"}}, 201)
	bob := b.register("bob@example.com")
	b.expect(req{method: "POST", path: "/v1/invites/" + inv.str("token") + "/accept", token: bob.access}, 200)

	perms := orgPath(owner.orgID, "members/"+bob.userID+"/permissions")
	for range 2 { // granting twice is one grant
		mp := b.expect(req{method: "POST", path: perms, token: owner.access, body: map[string]string{"permission": "credentials:write"}}, 200)
		if fmt.Sprint(mp.Body["grants"]) != "[credentials:write]" || !strings.Contains(fmt.Sprint(mp.Body["effective"]), "credentials:write") {
			t.Fatalf("after POST permissions: %s", mp.Raw)
		}
	}
	mp := b.expect(req{method: "POST", path: perms, token: owner.access, body: map[string]string{"permission": "audit:read"}}, 200)
	if fmt.Sprint(mp.Body["grants"]) != "[audit:read credentials:write]" {
		t.Errorf("a second grant replaced the first: %s", mp.Raw)
	}
	for _, tc := range []struct {
		body   any
		status int
		msg    string
	}{
		{map[string]string{"permission": "root"}, 400, `permission: unknown permission "root"`},
		{map[string]string{}, 400, "permission: is required"},
		{map[string]any{"permission": 7}, 400, "permission: must be a string"},
	} {
		before := b.snapshot()
		r := b.expect(req{method: "POST", path: perms, token: owner.access, body: tc.body}, tc.status)
		if !strings.HasPrefix(r.errMsg(), tc.msg) {
			t.Errorf("%v: %s, want %q", tc.body, r.Raw, tc.msg)
		}
		b.unchanged(before)
	}
	// Bob (a member, without members:admin) cannot grant himself anything.
	b.expect(req{method: "POST", path: perms, token: bob.access, header: inOrg(owner.orgID), body: map[string]string{"permission": "ssh:admin"}}, 403)

	enr := b.expect(req{method: "POST", path: "/v1/auth/mfa/enroll", token: owner.access}, 200)
	if !strings.HasPrefix(enr.str("otpauth_uri"), "otpauth://totp/") {
		t.Errorf("MFA enroll: %s", enr.Raw)
	}

	r := b.expect(req{method: "POST", path: "/v1/api-tokens", token: owner.access, body: map[string]any{"name": "ci"}}, 400)
	for _, want := range []string{"scopes:", "nodes:read", "provision:write", "ssh:sign", "audit:read"} {
		if !strings.Contains(r.errMsg(), want) {
			t.Errorf("missing scopes: %q does not name %q", r.errMsg(), want)
		}
	}
}
