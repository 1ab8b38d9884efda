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
	operations, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(".swagger-ui .opblock").length`))
	if err != nil {
		t.Fatal(err)
	}
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
