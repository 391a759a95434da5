package featuregate

import (
	"strings"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
)

// catalog is every Connect feature and what it needs: the GitHub App
// permissions its work on GitHub.com uses, and what each user must do.
var catalog = []*featuregatev1.FeatureInfo{
	{
		Feature:     featuregatev1.Feature_FEATURE_UNIFIED_SEARCH,
		Title:       "Unified search",
		Description: "Users searching on the server also see results from GitHub.com. Private GitHub.com repositories are searched only when that setting is on, and only for users who linked their GitHub.com account.",
		Permissions: map[string]string{"contents": "read", "issues": "read", "metadata": "read"},
		Consent:     featuregatev1.Consent_CONSENT_LINK_FOR_PRIVATE,
	},
	{
		Feature:     featuregatev1.Feature_FEATURE_UNIFIED_CONTRIBUTIONS,
		Title:       "Unified contributions",
		Description: "Users may send their contribution counts (never content) to their GitHub.com profile. Each user links a GitHub.com account and opts in.",
		Permissions: map[string]string{"metadata": "read"},
		Consent:     featuregatev1.Consent_CONSENT_OPT_IN,
	},
	{
		Feature:     featuregatev1.Feature_FEATURE_DEPENDABOT_ALERTS,
		Title:       "Dependabot alerts",
		Description: "The server downloads vulnerability data from GitHub.com to alert on vulnerable dependencies. No code or dependency list is sent.",
		Permissions: map[string]string{"vulnerability_alerts": "read"},
		Consent:     featuregatev1.Consent_CONSENT_NONE,
	},
	{
		Feature:     featuregatev1.Feature_FEATURE_LICENSE_SYNC,
		Title:       "Automatic user license sync",
		Description: "The server sends per-user license data so licensed users are counted once across the server and GitHub.com.",
		Permissions: map[string]string{"members": "read"},
		Consent:     featuregatev1.Consent_CONSENT_NONE,
	},
	{
		Feature:     featuregatev1.Feature_FEATURE_ACTIONS_ACCESS,
		Title:       "GitHub.com actions",
		Description: "Workflows on the server may use actions published on GitHub.com.",
		Permissions: map[string]string{"contents": "read", "metadata": "read"},
		Consent:     featuregatev1.Consent_CONSENT_NONE,
	},
	{
		Feature:     featuregatev1.Feature_FEATURE_SERVER_STATISTICS,
		Title:       "Server statistics",
		Description: "The server uploads aggregate usage metrics to GitHub.com.",
		Permissions: map[string]string{"organization_administration": "read"},
		Consent:     featuregatev1.Consent_CONSENT_NONE,
	},
}

var byFeature = func() map[featuregatev1.Feature]*featuregatev1.FeatureInfo {
	m := map[featuregatev1.Feature]*featuregatev1.FeatureInfo{}
	for _, f := range catalog {
		m[f.Feature] = f
	}
	return m
}()

// defaultSettings: every feature off. A new connection, and one that comes
// back after a disconnect, starts here.
func defaultSettings(connectionID string) *featuregatev1.Settings {
	s := &featuregatev1.Settings{ConnectionId: connectionID, Etag: "0"}
	for _, f := range catalog {
		s.Features = append(s.Features, &featuregatev1.FeatureSetting{Feature: f.Feature})
	}
	return s
}

// featureName is a feature's name in messages and audit details:
// FEATURE_UNIFIED_SEARCH is "unified_search".
func featureName(f featuregatev1.Feature) string {
	return strings.ToLower(strings.TrimPrefix(f.String(), "FEATURE_"))
}

// featureByName is featureName read back.
func featureByName(name string) featuregatev1.Feature {
	return featuregatev1.Feature(featuregatev1.Feature_value["FEATURE_"+strings.ToUpper(name)])
}
