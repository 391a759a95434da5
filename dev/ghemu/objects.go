package ghemu

import (
	"fmt"
	"strconv"
	"time"
)

// The JSON shapes below carry every field GitHub's OpenAPI description
// marks required for them, with URLs in api.github.com's layout.

const (
	apiBase  = "https://api.github.com"
	htmlBase = "https://github.com"
)

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func nodeID(kind string, id int64) string {
	return fmt.Sprintf("%s_%d", kind, id)
}

func userJSON(a *Account) map[string]any {
	if a.Type == "Enterprise" {
		return enterpriseJSON(a)
	}
	u := apiBase + "/users/" + a.Login
	return map[string]any{
		"login": a.Login, "id": a.ID, "node_id": nodeID("U", a.ID), "type": a.Type, "site_admin": false,
		"avatar_url": "https://avatars.githubusercontent.com/u/" + strconv.FormatInt(a.ID, 10), "gravatar_id": "",
		"url": u, "html_url": htmlBase + "/" + a.Login,
		"followers_url": u + "/followers", "following_url": u + "/following{/other_user}",
		"gists_url": u + "/gists{/gist_id}", "starred_url": u + "/starred{/owner}{/repo}",
		"subscriptions_url": u + "/subscriptions", "organizations_url": u + "/orgs",
		"repos_url": u + "/repos", "events_url": u + "/events{/privacy}", "received_events_url": u + "/received_events",
	}
}

// privateUserJSON is a person as they see themselves (GET /user).
func privateUserJSON(a *Account) map[string]any {
	u := userJSON(a)
	created := ts(time.Unix(1600000000, 0))
	for k, v := range map[string]any{
		"user_view_type": "private", "name": nilIfEmpty(a.Name), "company": nil, "blog": "", "location": nil,
		"email": nil, "hireable": nil, "bio": nil, "twitter_username": nil, "notification_email": nil,
		"public_repos": 0, "public_gists": 0, "followers": 0, "following": 0, "created_at": created, "updated_at": created,
		"private_gists": 0, "total_private_repos": 0, "owned_private_repos": 0, "disk_usage": 0, "collaborators": 0,
		"two_factor_authentication": true,
	} {
		u[k] = v
	}
	return u
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func enterpriseJSON(a *Account) map[string]any {
	name := a.Name
	if name == "" {
		name = a.Login
	}
	return map[string]any{
		"id": a.ID, "node_id": nodeID("E", a.ID), "name": name, "slug": a.Login,
		"html_url": htmlBase + "/enterprises/" + a.Login, "website_url": nil, "description": nil,
		"created_at": ts(time.Unix(1600000000, 0)), "updated_at": ts(time.Unix(1600000000, 0)),
		"avatar_url": "https://avatars.githubusercontent.com/b/" + strconv.FormatInt(a.ID, 10),
	}
}

// orgJSON is an organization-full as anyone sees it (no plan, no private
// counts).
func orgJSON(a *Account) map[string]any {
	u := apiBase + "/orgs/" + a.Login
	created := ts(time.Unix(1600000000, 0))
	return map[string]any{
		"login": a.Login, "id": a.ID, "node_id": nodeID("O", a.ID), "type": a.Type, "url": u,
		"repos_url": u + "/repos", "events_url": u + "/events", "hooks_url": u + "/hooks", "issues_url": u + "/issues",
		"members_url": u + "/members{/member}", "public_members_url": u + "/public_members{/member}",
		"avatar_url": "https://avatars.githubusercontent.com/u/" + strconv.FormatInt(a.ID, 10), "description": nil,
		"html_url": htmlBase + "/" + a.Login, "has_organization_projects": true, "has_repository_projects": true,
		"public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
		"created_at": created, "updated_at": created, "archived_at": nil, "is_verified": a.Verified,
	}
}

// repoURLs are the URL fields minimal-repository and repository share.
func repoURLs(r *Repo) map[string]any {
	u := apiBase + "/repos/" + r.FullName()
	return map[string]any{
		"id": r.ID, "node_id": nodeID("R", r.ID), "name": r.Name, "full_name": r.FullName(),
		"owner": userJSON(r.Owner), "private": r.Private, "fork": false, "description": nil,
		"html_url": htmlBase + "/" + r.FullName(), "url": u,
		"archive_url": u + "/{archive_format}{/ref}", "assignees_url": u + "/assignees{/user}",
		"blobs_url": u + "/git/blobs{/sha}", "branches_url": u + "/branches{/branch}",
		"collaborators_url": u + "/collaborators{/collaborator}", "comments_url": u + "/comments{/number}",
		"commits_url": u + "/commits{/sha}", "compare_url": u + "/compare/{base}...{head}",
		"contents_url": u + "/contents/{+path}", "contributors_url": u + "/contributors",
		"deployments_url": u + "/deployments", "downloads_url": u + "/downloads", "events_url": u + "/events",
		"forks_url": u + "/forks", "git_commits_url": u + "/git/commits{/sha}", "git_refs_url": u + "/git/refs{/sha}",
		"git_tags_url": u + "/git/tags{/sha}", "hooks_url": u + "/hooks", "issue_comment_url": u + "/issues/comments{/number}",
		"issue_events_url": u + "/issues/events{/number}", "issues_url": u + "/issues{/number}",
		"keys_url": u + "/keys{/key_id}", "labels_url": u + "/labels{/name}", "languages_url": u + "/languages",
		"merges_url": u + "/merges", "milestones_url": u + "/milestones{/number}",
		"notifications_url": u + "/notifications{?since,all,participating}", "pulls_url": u + "/pulls{/number}",
		"releases_url": u + "/releases{/id}", "stargazers_url": u + "/stargazers", "statuses_url": u + "/statuses/{sha}",
		"subscribers_url": u + "/subscribers", "subscription_url": u + "/subscription", "tags_url": u + "/tags",
		"teams_url": u + "/teams", "trees_url": u + "/git/trees{/sha}",
	}
}

func repoJSON(r *Repo) map[string]any {
	m := repoURLs(r)
	pushed := r.pushed
	if pushed.IsZero() {
		pushed = r.Created
	}
	for k, v := range map[string]any{
		"clone_url": htmlBase + "/" + r.FullName() + ".git", "git_url": "git://github.com/" + r.FullName() + ".git",
		"ssh_url": "git@github.com:" + r.FullName() + ".git", "svn_url": htmlBase + "/" + r.FullName(),
		"mirror_url": nil, "homepage": nil, "language": nil, "license": nil,
		"default_branch": r.DefaultBranch, "forks": 0, "forks_count": 0, "open_issues": len(r.Issues), "open_issues_count": len(r.Issues),
		"stargazers_count": 0, "watchers": 0, "watchers_count": 0, "size": 1,
		"has_downloads": true, "has_issues": true, "has_projects": true, "has_wiki": true, "has_pages": false,
		"archived": false, "disabled": false, "visibility": visibility(r),
		"pushed_at": ts(pushed), "created_at": ts(r.Created), "updated_at": ts(pushed),
	} {
		m[k] = v
	}
	return m
}

func visibility(r *Repo) string {
	if r.Private {
		return "private"
	}
	return "public"
}

func appJSON(a *App) map[string]any {
	perms := a.Permissions
	if perms == nil {
		perms = map[string]string{}
	}
	events := a.Events
	if events == nil {
		events = []string{}
	}
	return map[string]any{
		"id": a.ID, "slug": a.Slug, "node_id": nodeID("A", a.ID), "client_id": a.ClientID,
		"owner": userJSON(a.Owner), "name": a.Name, "description": nil,
		"external_url": "https://ghconnect.invalid/apps/" + a.Slug, "html_url": htmlBase + "/apps/" + a.Slug,
		"created_at": ts(a.Created), "updated_at": ts(a.Created), "permissions": perms, "events": events,
	}
}

func installationJSON(i *Installation) map[string]any {
	targetType := i.Account.Type
	return map[string]any{
		"id": i.ID, "account": userJSON(i.Account), "repository_selection": i.Selection,
		"access_tokens_url": apiBase + "/app/installations/" + strconv.FormatInt(i.ID, 10) + "/access_tokens",
		"repositories_url":  apiBase + "/installation/repositories",
		"html_url":          htmlBase + "/settings/installations/" + strconv.FormatInt(i.ID, 10),
		"app_id":            i.App.ID, "app_slug": i.App.Slug, "target_id": i.Account.ID, "target_type": targetType,
		"permissions": i.Permissions, "events": nonNil(i.App.Events), "single_file_name": nil,
		"created_at": ts(i.Created), "updated_at": ts(i.Created), "suspended_by": nil, "suspended_at": nil,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
