package providers

import "strings"

// escape makes a user string a literal in Terraform JSON: Terraform
// evaluates "${" and "%{" sequences in JSON string values as templates.
func escape(s string) string {
	s = strings.ReplaceAll(s, "${", "$${")
	return strings.ReplaceAll(s, "%{", "%%{")
}

func escapeMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[escape(k)] = escape(v)
	}
	return out
}

func escapeList(l []string) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = escape(v)
	}
	return out
}
