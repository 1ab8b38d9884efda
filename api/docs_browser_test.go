package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shardform/shardform/internal/browsertest"
)

// TestDocsInChromium: Swagger UI renders this server's document in a real
// browser under the page's Content-Security-Policy, from embedded files
// alone, with every operation listed.
func TestDocsInChromium(t *testing.T) {
	t.Parallel()
	browser := browsertest.New(t)
	b := fullServer(t)
	base := b.listen()
	ctx := browser.Context(t, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/docs"), chromedp.WaitVisible(chromedp.CSS(".swagger-ui .opblock"))); err != nil {
		t.Fatalf("/docs did not render: %v\nconsole:\n%s", err, strings.Join(browser.Console(), "\n"))
	}
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".swagger-ui .info .title")))
	if err != nil {
		t.Fatal(err)
	}
	// Swagger UI virtualizes a long list of operations: only those near
	// the viewport are in the page. Scroll through it, collecting the
	// operations rendered on the way, until the end stops moving.
	seen := map[string]bool{}
	still := 0
	for step := 0; step < 2000 && still < 5; step++ {
		ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(".swagger-ui .opblock")).map(e => e.id)`))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			seen[id] = true
		}
		atEnd, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const y = window.scrollY; window.scrollBy(0, window.innerHeight / 2); return window.scrollY === y; })()`))
		if err != nil {
			t.Fatal(err)
		}
		if atEnd {
			still++
		} else {
			still = 0
		}
		time.Sleep(20 * time.Millisecond) // let the list render what scrolled in
	}
	operations := len(seen)
	if !strings.Contains(title, "shardform") {
		t.Errorf("title %q, want the document's", title)
	}
	if operations < 90 {
		t.Errorf("%d operations rendered, want every documented one (90+)", operations)
	}
	for _, line := range browser.Console() {
		if strings.Contains(line, "Content Security Policy") || strings.Contains(line, "Refused to") {
			t.Errorf("the page broke its own CSP: %s", line)
		}
	}
}
