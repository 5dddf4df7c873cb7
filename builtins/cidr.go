package builtins

import (
	"fmt"
	"net/netip"

	"go.starlark.net/starlark"
)

const cidrContainsDoc = `cidr_contains(cidr, ip)
Returns whether ip lies inside cidr, for checks on vars such as
"DNS_SERVICE_IP must lie inside SERVICE_IP_RANGE". It declares no step.

- cidr: a network such as "10.3.0.0/24".
- ip: an address such as "10.3.0.10".`

const cidrOverlapsDoc = `cidr_overlaps(a, b)
Returns whether the networks a and b share any address, for checks such as
"POD_NETWORK must not overlap SERVICE_IP_RANGE". It declares no step.

- a, b: networks such as "10.2.0.0/16" and "10.3.0.0/24".`

// cidrContains implements the cidr_contains builtin; see cidrContainsDoc.
func cidrContains(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var cidr, ip string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "cidr", &cidr, "ip", &ip); err != nil {
		return nil, err
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not a CIDR (want one such as 10.3.0.0/24)", fn.Name(), cidr)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not an IP address (want one such as 10.3.0.10)", fn.Name(), ip)
	}
	return starlark.Bool(p.Contains(a)), nil
}

// cidrOverlaps implements the cidr_overlaps builtin; see cidrOverlapsDoc.
func cidrOverlaps(thread *starlark.Thread, fn *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var a, b string
	if err := starlark.UnpackArgs(fn.Name(), args, kwargs, "a", &a, "b", &b); err != nil {
		return nil, err
	}
	var prefixes [2]netip.Prefix
	for i, s := range []string{a, b} {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a CIDR (want one such as 10.2.0.0/16)", fn.Name(), s)
		}
		prefixes[i] = p
	}
	return starlark.Bool(prefixes[0].Overlaps(prefixes[1])), nil
}
