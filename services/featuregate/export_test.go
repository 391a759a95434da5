package featuregate

import (
	"context"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
)

// Link records a link on the store directly, as CompleteAccountLink does
// once GitHub.com proved it: for the tests of what a link changes (Check,
// consents, the history), not of linking, which the link tests run
// through GitHub.com's authorization end to end.
func Link(ctx context.Context, s *Store, conn, user, githubLogin string, githubID int64, actor string) error {
	return s.Link(ctx, conn, &featuregatev1.AccountLink{User: user, GithubLogin: githubLogin, GithubId: githubID}, who{actor: actor})
}

// MarkLinkBroken marks user's link as GitHub.com no longer accepting it,
// as the gate does when the broker says so.
func MarkLinkBroken(ctx context.Context, s *Store, conn, user string) error {
	return s.MarkLinkBroken(ctx, conn, user, linkBroken)
}

// WaitState is why a connection's queued counts wait, given what the
// uploader recorded.
func WaitState(reason featuregatev1.Reason, success, failure int64, lastError string) (featuregatev1.ContributionsState, string) {
	return waitState(reason, uploadsRecord{success: success, failure: failure, lastError: lastError})
}
