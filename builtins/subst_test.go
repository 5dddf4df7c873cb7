package builtins

import (
	"slices"
	"testing"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	values := map[string]string{"ADVERTISE_IP": "10.0.0.10", "K8S_VER": "v1.4.0_coreos.0", "EMPTY": ""}
	tests := map[string]struct {
		in, want    string
		wantMissing []string
	}{
		"braces":            {in: "FLANNELD_IFACE=${ADVERTISE_IP}\n", want: "FLANNELD_IFACE=10.0.0.10\n"},
		"bare":              {in: "--hostname-override=$ADVERTISE_IP end", want: "--hostname-override=10.0.0.10 end"},
		"bare_ends_at_dash": {in: "$K8S_VER-x", want: "v1.4.0_coreos.0-x"},
		"empty_value":       {in: "--network-plugin=${EMPTY}", want: "--network-plugin="},
		"dollar_dollar":     {in: "cost $$5 ${EMPTY}", want: "cost $5 "},
		"lone_dollar":       {in: "a $ b $1", want: "a $ b $1"},
		"missing_listed_once_sorted": {
			in: "${B} $A ${B}", want: "${B} $A ${B}", wantMissing: []string{"$A", "$B"},
		},
	}
	for name, tc := range tests {
		got, missing := expand(tc.in, values)
		if got != tc.want || !slices.Equal(missing, tc.wantMissing) {
			t.Errorf("%s: expand(%q) = %q, %v; want %q, %v", name, tc.in, got, missing, tc.want, tc.wantMissing)
		}
	}
}
