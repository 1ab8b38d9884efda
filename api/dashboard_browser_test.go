package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/shardform/shardform/internal/browsertest"
)

// a11yCheck is the accessibility basics of a page: every form field has a
// label, every button a name, the page one h1. It answers the problems.
const a11yCheck = `(() => {
  const out = [];
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) out.push(h1 + " h1 elements");
  document.querySelectorAll("input:not([type=hidden]), select, textarea").forEach(el => {
    const named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) out.push("field without a label: " + (el.id || el.name));
  });
  document.querySelectorAll("button").forEach(el => {
    if (el.hidden) return;
    if (!(el.textContent.trim() || el.getAttribute("aria-label"))) out.push("button without a name");
  });
  return out;
})()`

// TestDashboardInChromium walks the dashboard in a real browser: sign in
// with MFA, create a local provision request, plan it, see the resource
// change, apply it while the live log streams to "applied", find the node
// in the nodes table, destroy it; create an API token whose secret shows
// once; a viewer sees no write button. Every page is checked for the
// accessibility basics and its own CSP; screenshots go to
// $SHARDFORM_SCREENSHOT_DIR (else a temporary directory).
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	browser := browsertest.New(t)
	b := setup(t, setupOpts{provisioning: true})
	owner := b.bootstrap("owner@acme.test")
	viewer := b.join(owner, owner.orgID, "viewer@acme.test", "viewer")
	secret := b.expect(req{method: "POST", path: "/v1/auth/mfa/enroll", token: owner.access}, 200).str("secret")
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.expect(req{method: "POST", path: "/v1/auth/mfa/verify", token: owner.access, body: map[string]string{"code": code}}, 200)
	base := b.listen()
	shots := os.Getenv("SHARDFORM_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	}
	// Chromium and Terraform share two cores with other tests: minutes, not seconds.
	ctx := browser.Context(t, 10*time.Minute)
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\nconsole:\n%s", what, err, strings.Join(browser.Console(), "\n"))
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	checkPage := func(name string) {
		t.Helper()
		problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](a11yCheck))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", name, p)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	step("viewport", chromedp.EmulateViewport(1280, 800))

	// Sign in: password, then the MFA code.
	step("sign in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), owner.email), chromedp.SendKeys(chromedp.CSS("#password"), testPassword))
	checkPage("login")
	step("password", chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS("#code")))
	code, _ = totp.GenerateCode(secret, time.Now().Add(30*time.Second)) // the enrolment used this period's
	step("mfa code", chromedp.SendKeys(chromedp.CSS("#code"), code), chromedp.Submit(chromedp.CSS("#code")),
		chromedp.WaitVisible(chromedp.CSS("a.card")))
	checkPage("overview")

	// Create a local request from the catalog's form.
	step("create form", chromedp.Navigate(base+"/provision/new"), chromedp.WaitVisible(chromedp.CSS("#name")))
	checkPage("provision-new")
	step("create", chromedp.SendKeys(chromedp.CSS("#name"), "web-1"), chromedp.Submit(chromedp.CSS("#name")),
		chromedp.WaitVisible(chromedp.CSS("#btn-plan")))
	requestURL := eval(`location.href`)

	// Plan: the live log, then the resource change.
	step("plan", chromedp.Click(chromedp.CSS("#btn-plan")), chromedp.WaitVisible(chromedp.CSS("#btn-apply")))
	changes := eval(`document.querySelector("table.changes") ? document.querySelector("table.changes").innerText : ""`)
	if !strings.Contains(changes, "create") {
		t.Errorf("the plan shows no resource to create:\n%s", changes)
	}
	checkPage("provision-plan")

	// Apply after the confirmation, watching the live log.
	step("confirm page", chromedp.Click(chromedp.CSS("#btn-apply")), chromedp.WaitVisible(chromedp.CSS("#confirm-apply")))
	step("apply", chromedp.Click(chromedp.CSS("#confirm-apply")), chromedp.WaitVisible(chromedp.CSS("#req-status")))
	var streamed, sawLive bool
	deadline := time.Now().Add(5 * time.Minute)
	for {
		state := eval(`(() => {
		  const log = document.getElementById("live-log"), end = document.getElementById("live-end");
		  const st = document.getElementById("req-status");
		  return [log ? "live" : "", log && log.textContent.length > 0 ? "lines" : "", end ? (end.getAttribute("data-status") || "") : "", st ? st.textContent : ""].join("|");
		})()`)
		parts := strings.Split(state, "|")
		sawLive = sawLive || parts[0] == "live"
		streamed = streamed || parts[1] == "lines"
		if parts[2] == "applied" || (parts[0] == "" && parts[3] == "applied") {
			break
		}
		if parts[2] == "failed" || parts[3] == "failed" || time.Now().After(deadline) {
			t.Fatalf("apply did not reach applied: %s\nconsole:\n%s", state, strings.Join(browser.Console(), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("apply: live log shown %v, lines streamed %v", sawLive, streamed)
	if sawLive && !streamed {
		t.Error("the live log of the apply showed no line")
	}
	if !sawLive {
		t.Log("the apply finished before its page loaded: the stored log was shown instead of the live one")
	}
	step("applied page", chromedp.Navigate(requestURL), chromedp.WaitVisible(chromedp.CSS("#btn-destroy")))
	checkPage("provision-applied")

	// The node is in the nodes table.
	step("nodes", chromedp.Navigate(base+"/nodes"), chromedp.WaitVisible(chromedp.CSS("#nodes")))
	if rows := eval(`document.querySelector("#nodes tbody").innerText`); !strings.Contains(rows, "web-1") {
		t.Errorf("the node is not in the table:\n%s", rows)
	}
	checkPage("nodes")
	step("node page", chromedp.Click(chromedp.CSS(`#nodes a`)), chromedp.WaitVisible(chromedp.CSS(".usage")))
	checkPage("node")

	// An API token: the secret once.
	step("tokens", chromedp.Navigate(base+"/tokens"), chromedp.WaitVisible(chromedp.CSS("#token-name")))
	step("create token", chromedp.SendKeys(chromedp.CSS("#token-name"), "ci"), chromedp.Click(chromedp.CSS(`input[value="provision:read"]`)),
		chromedp.Submit(chromedp.CSS("#token-name")), chromedp.WaitVisible(chromedp.CSS("#token-secret")))
	tok, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#token-secret")))
	if err != nil || !strings.HasPrefix(tok, "shardform_api_") {
		t.Errorf("token secret %q: %v", tok, err)
	}
	checkPage("tokens")
	step("tokens again", chromedp.Navigate(base+"/tokens"), chromedp.WaitVisible(chromedp.CSS("#token-name")))
	if again := eval(`document.body.innerHTML`); strings.Contains(again, tok) {
		t.Error("the token's secret is shown again")
	}

	// Destroy (the confirmation dialog answered yes).
	step("destroy", chromedp.Navigate(requestURL), chromedp.WaitVisible(chromedp.CSS("#btn-destroy")))
	eval(`(() => { window.confirm = () => true; return ""; })()`)
	step("destroy click", chromedp.Click(chromedp.CSS("#btn-destroy")), chromedp.WaitVisible(chromedp.CSS("#req-status")))
	// The page reloads itself when the run ends: read it until it says so.
	deadline = time.Now().Add(5 * time.Minute)
	for {
		st, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const s = document.getElementById("req-status"); return s ? s.textContent : ""; })()`))
		if err == nil && st == "destroyed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("destroy did not reach destroyed: %q, %v", st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	step("destroyed page", chromedp.Navigate(requestURL), chromedp.WaitVisible(chromedp.CSS("#runs-h")))

	// The status filter swaps the table in place (htmx) and keeps the URL.
	step("filter", chromedp.Navigate(base+"/provision"), chromedp.WaitVisible(chromedp.CSS("#f-status")))
	eval(`(() => { const s = document.getElementById("f-status"); s.value = "applied"; s.dispatchEvent(new Event("change", {bubbles: true})); return ""; })()`)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`location.search.includes("status=applied") && !!document.querySelector("#list .empty")`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Minute))); err != nil {
		t.Errorf("the status filter did not swap the list: %v (%s)", err, eval(`location.href`))
	}

	// A viewer: no write buttons.
	step("sign out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#email")))
	step("viewer sign in", chromedp.SendKeys(chromedp.CSS("#email"), viewer.email), chromedp.SendKeys(chromedp.CSS("#password"), testPassword),
		chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS("#org-switch")))
	step("viewer org", chromedp.SetValue(chromedp.CSS("#org-switch"), owner.orgID), chromedp.Submit(chromedp.CSS("#org-switch")),
		chromedp.WaitVisible(chromedp.CSS("a.card")), chromedp.Navigate(requestURL), chromedp.WaitVisible(chromedp.CSS("#runs-h")))
	if n := eval(`String(document.querySelectorAll("main form button, #btn-apply").length)`); n != "0" {
		t.Errorf("the viewer sees %s write buttons", n)
	}
	checkPage("viewer-request")

	// A narrow screen: the page does not scroll sideways (wide tables
	// scroll inside their own box).
	step("narrow", chromedp.EmulateViewport(390, 844), chromedp.Navigate(base+"/provision"), chromedp.WaitVisible(chromedp.CSS("#list table")))
	if wide := eval(`String(document.documentElement.scrollWidth > window.innerWidth + 1)`); wide != "false" {
		t.Errorf("the provisioning page is wider than a narrow screen (%s px)", eval(`String(document.documentElement.scrollWidth)`))
	}
	checkPage("provision-narrow")

	for _, line := range browser.Console() {
		if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "Refused to") {
			t.Errorf("a page broke its own CSP: %s", line)
		}
	}
}
