package dashboard

import (
	"encoding/base64"
	"fmt"
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/shardform/shardform/identity"
)

const flashCookie = "sf_flash"

// flash keeps a message for the next page the browser loads (the answer
// to a form post is a redirect).
func (d *Dashboard) flash(c *fiber.Ctx, msg string) {
	d.setCookie(c, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(msg)), time.Minute)
}

// takeFlash returns the message a form post left, and deletes it.
func (d *Dashboard) takeFlash(c *fiber.Ctx) string {
	v := c.Cookies(flashCookie)
	if v == "" {
		return ""
	}
	d.setCookie(c, flashCookie, "", -1)
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) > 1000 {
		return ""
	}
	return string(b)
}

func (d *Dashboard) funcs() template.FuncMap {
	return template.FuncMap{
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			dt := d.cfg.Now().Sub(t)
			switch {
			case dt < time.Minute:
				return "just now"
			case dt < time.Hour:
				return fmt.Sprintf("%d min ago", int(dt.Minutes()))
			case dt < 48*time.Hour:
				return fmt.Sprintf("%d h ago", int(dt.Hours()))
			}
			return fmt.Sprintf("%d days ago", int(dt.Hours()/24))
		},
		"when": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		},
		"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
		"num":  func(f float64) string { return trimFloat(f) },
		"gb":   func(mb int32) string { return trimFloat(float64(mb) / 1024) },
		"pct": func(a, b float64) int {
			if b <= 0 {
				return 0
			}
			return int(math.Round(100 * a / b))
		},
		"deref": func(p *int) string {
			if p == nil {
				return ""
			}
			return fmt.Sprint(*p)
		},
		"actionClass": func(a string) string {
			switch a {
			case "create":
				return "act-create"
			case "delete":
				return "act-delete"
			case "update":
				return "act-update"
			case "replace":
				return "act-replace"
			}
			return "act-other"
		},
		"milli": func(m int64) float64 { return float64(m) / 1000 },
		"mib":   func(m int64) float64 { return float64(m) / 1024 },
		"int64": func(i int32) int64 { return int64(i) },
		"certURI": func(cert string) template.URL {
			return template.URL("data:text/plain;base64," + base64.StdEncoding.EncodeToString([]byte(strings.TrimSpace(cert)+"\n")))
		},
		"add": func(a, b int) int { return a + b },
		"userName": func(members []identity.Member, id uuid.UUID) string {
			for _, m := range members {
				if m.UserID == id {
					return m.Email
				}
			}
			return id.String()
		},
		"join": func(s []string) string { return strings.Join(s, ", ") },
		"list": func(s ...string) []string { return s },
		"running": func(status string) bool {
			return status == "planning" || status == "applying" || status == "destroying"
		},
	}
}

func trimFloat(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}
