package dns

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/shardform/shardform/domain"
)

// Types are the record types shardform manages.
var Types = []string{"A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA"}

// MaxContentLength bounds a record's content (Cloudflare's TXT limit).
const MaxContentLength = 2048

// label is one DNS label: letters, digits, hyphens (not at either end) and
// underscores (service labels such as _minecraft, _dmarc).
var label = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)

// validHost reports whether s (lowercase, no trailing dot) is a host name:
// at most 253 characters of valid labels, at least two of them.
func validHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 || strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return false // one label, or a numeric top-level label (an address)
	}
	for _, l := range labels {
		if !label.MatchString(l) {
			return false
		}
	}
	return true
}

// normalizeHost lowercases a host name and drops its trailing dot.
func normalizeHost(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// RecordName turns a name as the caller gave it (relative to the zone,
// "@" for the apex, or fully qualified with or without the final dot) into
// the fully qualified name inside zone, or a 400 naming field.
func RecordName(field, name, zone string) (string, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	zone = normalizeHost(zone)
	switch {
	case n == "":
		return "", domain.Invalid(field, "is required")
	case n == "@" || n == zone || n == zone+".":
		return zone, nil
	case strings.HasSuffix(n, "."+zone+"."):
		n = strings.TrimSuffix(n, ".")
	case strings.HasSuffix(n, "."+zone):
	case strings.HasSuffix(n, "."):
		return "", domain.Invalid(field, "must be inside the zone %s (a name relative to it, or ending in .%s)", zone, zone)
	default:
		n += "." + zone
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if i == 0 && l == "*" {
			continue // a wildcard
		}
		if !label.MatchString(l) {
			return "", domain.Invalid(field, "must be a valid DNS name: labels of 1-63 letters, digits, hyphens and underscores (not starting or ending with a hyphen), a leading * for a wildcard")
		}
	}
	if len(n) > 253 {
		return "", domain.Invalid(field, "must be at most 253 characters once fully qualified")
	}
	return n, nil
}

// Desired is a record's desired state, validated and in Cloudflare's form.
type Desired struct {
	Type     string
	Name     string // fully qualified
	Content  string // Cloudflare's form (SRV: "weight port target"; CAA: flags tag "value")
	TTL      int
	Proxied  bool
	Priority *int
}

// Spec is what a caller asks for (create or update), before validation.
type Spec struct {
	Type     string
	Name     string
	Content  string
	TTL      *int
	Proxied  *bool
	Priority *int
	Weight   *int
	Port     *int
	Target   string
}

var caaContent = regexp.MustCompile(`^(\d{1,3})\s+([a-zA-Z0-9]+)\s+(.+)$`)

// Validate checks a spec for zone: every failure is a 400 naming the field.
func (sp Spec) Validate(zone string) (Desired, error) {
	d := Desired{Type: strings.ToUpper(strings.TrimSpace(sp.Type)), Priority: sp.Priority}
	if d.Type == "" {
		return d, domain.Invalid("type", "is required")
	}
	if !slices.Contains(Types, d.Type) {
		return d, domain.Invalid("type", "must be one of %s", strings.Join(Types, ", "))
	}
	name, err := RecordName("name", sp.Name, zone)
	if err != nil {
		return d, err
	}
	d.Name = name
	d.TTL = 1
	if sp.TTL != nil {
		d.TTL = *sp.TTL
	}
	if d.TTL != 1 && (d.TTL < 60 || d.TTL > 86400) {
		return d, domain.Invalid("ttl", "must be 1 (automatic) or 60-86400 seconds")
	}
	if sp.Proxied != nil {
		d.Proxied = *sp.Proxied
	}
	if d.Proxied && d.Type != "A" && d.Type != "AAAA" && d.Type != "CNAME" {
		return d, domain.Invalid("proxied", "only A, AAAA and CNAME records can be proxied")
	}
	if d.Proxied && d.TTL != 1 {
		// Cloudflare serves every proxied record with its automatic TTL
		// and stores 1 whatever was sent.
		return d, domain.Invalid("ttl", "proxied records have automatic TTL: must be 1 (or left out)")
	}
	if d.Type != "SRV" && (sp.Weight != nil || sp.Port != nil || sp.Target != "") {
		field := "weight"
		if sp.Port != nil {
			field = "port"
		} else if sp.Target != "" {
			field = "target"
		}
		return d, domain.Invalid(field, "is only for SRV records")
	}
	if d.Type != "MX" && d.Type != "SRV" && sp.Priority != nil {
		return d, domain.Invalid("priority", "is only for MX and SRV records")
	}
	if d.Priority != nil && (*d.Priority < 0 || *d.Priority > 65535) {
		return d, domain.Invalid("priority", "must be 0-65535")
	}
	content := strings.TrimSpace(sp.Content)
	if len(content) > MaxContentLength {
		return d, domain.Invalid("content", "must be at most %d characters", MaxContentLength)
	}
	switch d.Type {
	case "A":
		a, err := netip.ParseAddr(content)
		if err != nil || !a.Is4() {
			return d, domain.Invalid("content", "must be an IPv4 address for an A record")
		}
		d.Content = a.String()
	case "AAAA":
		a, err := netip.ParseAddr(content)
		if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
			return d, domain.Invalid("content", "must be an IPv6 address for an AAAA record")
		}
		d.Content = a.String()
	case "CNAME":
		host := normalizeHost(content)
		if !validHost(host) {
			return d, domain.Invalid("content", "must be a host name for a CNAME record")
		}
		if host == d.Name {
			return d, domain.Invalid("content", "a CNAME cannot point at itself")
		}
		d.Content = host
	case "MX":
		host := normalizeHost(content)
		if !validHost(host) {
			return d, domain.Invalid("content", "must be a host name (the mail server) for an MX record")
		}
		if d.Priority == nil {
			return d, domain.Invalid("priority", "is required for an MX record")
		}
		d.Content = host
	case "TXT":
		if content == "" {
			return d, domain.Invalid("content", "is required")
		}
		d.Content = content
	case "SRV":
		if err := srvName(d.Name); err != nil {
			return d, err
		}
		weight, port, target := sp.Weight, sp.Port, normalizeHost(sp.Target)
		if content != "" {
			// Cloudflare's form: "weight port target".
			f := strings.Fields(content)
			if len(f) != 3 {
				return d, domain.Invalid("content", "must be \"weight port target\" for an SRV record (or give weight, port and target)")
			}
			w, werr := strconv.Atoi(f[0])
			p, perr := strconv.Atoi(f[1])
			if werr != nil || perr != nil {
				return d, domain.Invalid("content", "must be \"weight port target\" for an SRV record (or give weight, port and target)")
			}
			if weight != nil && *weight != w || port != nil && *port != p || target != "" && target != normalizeHost(f[2]) {
				return d, domain.Invalid("content", "disagrees with weight, port or target")
			}
			weight, port, target = &w, &p, normalizeHost(f[2])
		}
		if d.Priority == nil {
			return d, domain.Invalid("priority", "is required for an SRV record")
		}
		if weight == nil {
			return d, domain.Invalid("weight", "is required for an SRV record")
		}
		if *weight < 0 || *weight > 65535 {
			return d, domain.Invalid("weight", "must be 0-65535")
		}
		if port == nil {
			return d, domain.Invalid("port", "is required for an SRV record")
		}
		if *port < 0 || *port > 65535 {
			return d, domain.Invalid("port", "must be 0-65535")
		}
		if target == "" {
			return d, domain.Invalid("target", "is required for an SRV record (a host name, or a node_id with a name)")
		}
		if !validHost(target) {
			return d, domain.Invalid("target", "must be a host name")
		}
		d.Content = fmt.Sprintf("%d %d %s", *weight, *port, target)
	case "CAA":
		m := caaContent.FindStringSubmatch(content)
		if m == nil {
			return d, domain.Invalid("content", "must be `flags tag \"value\"` for a CAA record, e.g. 0 issue \"letsencrypt.org\"")
		}
		flags, _ := strconv.Atoi(m[1])
		tag := strings.ToLower(m[2])
		if flags > 255 {
			return d, domain.Invalid("content", "CAA flags must be 0-255")
		}
		if tag != "issue" && tag != "issuewild" && tag != "iodef" {
			return d, domain.Invalid("content", "CAA tag must be issue, issuewild or iodef")
		}
		value := strings.Trim(strings.TrimSpace(m[3]), `"`)
		if value == "" && tag == "iodef" {
			return d, domain.Invalid("content", "a CAA iodef record needs a URL")
		}
		d.Content = fmt.Sprintf("%d %s %q", flags, tag, value)
	}
	return d, nil
}

// srvName checks an SRV record's name: _service._proto.name.
func srvName(name string) error {
	l := strings.Split(name, ".")
	if len(l) < 3 || !strings.HasPrefix(l[0], "_") || len(l[0]) < 2 || !slices.Contains([]string{"_tcp", "_udp", "_tls"}, l[1]) {
		return domain.Invalid("name", "an SRV record's name is _service._proto.name (e.g. _minecraft._tcp.mc)")
	}
	return nil
}

// caaData splits CAA content into Cloudflare's data fields.
func caaData(content string) map[string]any {
	m := caaContent.FindStringSubmatch(content)
	if m == nil {
		return nil
	}
	flags, _ := strconv.Atoi(m[1])
	return map[string]any{"flags": flags, "tag": m[2], "value": strings.Trim(m[3], `"`)}
}

// srvData splits SRV content ("weight port target") into Cloudflare's data fields.
func srvData(content string, priority *int) map[string]any {
	f := strings.Fields(content)
	if len(f) != 3 {
		return nil
	}
	w, _ := strconv.Atoi(f[0])
	p, _ := strconv.Atoi(f[1])
	prio := 0
	if priority != nil {
		prio = *priority
	}
	return map[string]any{"priority": prio, "weight": w, "port": p, "target": f[2]}
}
