package testenv

import (
	"context"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// AggregateClusterRole does the part of kube-controller-manager's clusterrole-aggregation controller a
// test control plane lacks: it sets the rules of ClusterRole name to the rules of every ClusterRole its
// aggregationRule selects (by name, without duplicates, as the controller does). The built-in "admin",
// "edit" and "view" roles have no rules until this runs. Selected roles that aggregate themselves are
// aggregated first: "admin" gets most of its rules from "edit", which gets some from "view".
func (e *Env) AggregateClusterRole(ctx context.Context, name string) error {
	return e.aggregate(ctx, name, map[string]bool{})
}

func (e *Env) aggregate(ctx context.Context, name string, done map[string]bool) error {
	if done[name] {
		return nil
	}
	done[name] = true
	var role rbacv1.ClusterRole
	if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, &role); err != nil {
		return fmt.Errorf("failed to get ClusterRole %s: %w", name, err)
	}
	if role.AggregationRule == nil {
		return fmt.Errorf("ClusterRole %s has no aggregationRule", name)
	}
	var sources []rbacv1.ClusterRole
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			return fmt.Errorf("ClusterRole %s: %w", name, err)
		}
		var list rbacv1.ClusterRoleList
		if err := e.Client.List(ctx, &list, client.MatchingLabelsSelector{Selector: s}); err != nil {
			return fmt.Errorf("failed to list the ClusterRoles aggregated into %s: %w", name, err)
		}
		for _, src := range list.Items {
			if src.AggregationRule != nil && !done[src.Name] {
				if err := e.aggregate(ctx, src.Name, done); err != nil {
					return err
				}
				if err := e.Client.Get(ctx, client.ObjectKey{Name: src.Name}, &src); err != nil {
					return fmt.Errorf("failed to get ClusterRole %s: %w", src.Name, err)
				}
			}
			sources = append(sources, src)
		}
	}
	slices.SortFunc(sources, func(a, b rbacv1.ClusterRole) int { return strings.Compare(a.Name, b.Name) })
	var rules []rbacv1.PolicyRule
	for _, src := range sources {
		if src.Name == name {
			continue
		}
		for _, r := range src.Rules {
			if !slices.ContainsFunc(rules, func(have rbacv1.PolicyRule) bool { return equality.Semantic.DeepEqual(have, r) }) {
				rules = append(rules, r)
			}
		}
	}
	patch := client.MergeFrom(role.DeepCopy())
	role.Rules = rules
	if err := e.Client.Patch(ctx, &role, patch); err != nil {
		return fmt.Errorf("failed to write the aggregated rules of ClusterRole %s: %w", name, err)
	}
	return nil
}
