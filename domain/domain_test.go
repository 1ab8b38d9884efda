package domain

import (
	"errors"
	"testing"
)

func TestParsePage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		page, limit string
		want        Page
		field       string
	}{
		{"", "", Page{1, 20}, ""},
		{"3", "100", Page{3, 100}, ""},
		{"0", "", Page{}, "page"},
		{"x", "", Page{}, "page"},
		{"", "101", Page{}, "limit"},
		{"", "0", Page{}, "limit"},
		{"", "-5", Page{}, "limit"},
	}
	for _, tt := range tests {
		got, err := ParsePage(tt.page, tt.limit)
		var verr *ValidationError
		if tt.field != "" {
			if !errors.As(err, &verr) || verr.Field != tt.field {
				t.Errorf("ParsePage(%q, %q) err = %v, want one naming %s", tt.page, tt.limit, err, tt.field)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePage(%q, %q) = %+v, %v", tt.page, tt.limit, got, err)
		}
	}
	if off := (Page{Page: 3, Limit: 20}).Offset(); off != 40 {
		t.Errorf("Offset = %d", off)
	}
}

func TestRolePermissions(t *testing.T) {
	t.Parallel()
	for _, info := range Catalog() {
		if !NewPermissionSet(RolePermissions(RoleOwner)).Has(info.Key) {
			t.Errorf("owner lacks %s", info.Key)
		}
	}
	viewer := NewPermissionSet(RolePermissions(RoleViewer))
	for p := range viewer {
		if p[len(p)-5:] != ":read" {
			t.Errorf("viewer holds %s, which is not a read permission", p)
		}
	}
	eff := EffectivePermissions(RoleViewer, []Permission{PermNodesWrite})
	if !eff.Has(PermNodesWrite) || !eff.Has(PermNodesRead) || eff.Has(PermSSHAdmin) {
		t.Errorf("viewer + grant = %v", eff.Sorted())
	}
	scopes := NewPermissionSet([]Permission{PermNodesWrite, PermSSHAdmin}).Intersect(eff)
	if got := scopes.Sorted(); len(got) != 1 || got[0] != PermNodesWrite {
		t.Errorf("intersect = %v", got)
	}
	if ValidPermission("root:all") || !ValidPermission(PermAuditRead) {
		t.Error("ValidPermission is wrong")
	}
}
