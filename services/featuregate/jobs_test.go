package featuregate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ghconnect/ghconnect/dev/ghemu"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/testenv"
	"github.com/ghconnect/ghconnect/services/broker/brokertest"
	"github.com/ghconnect/ghconnect/services/featuregate"
	"github.com/ghconnect/ghconnect/services/featuregate/licensesync"
)

// jobPerms are an App's permissions that serve license sync and Server
// Statistics, besides the harness's defaults.
var jobPerms = map[string]string{"contents": "write", "issues": "write", "metadata": "read", "members": "read", "organization_administration": "read"}

const (
	licenseSyncFeature = featuregatev1.Feature_FEATURE_LICENSE_SYNC
	statsFeature       = featuregatev1.Feature_FEATURE_SERVER_STATISTICS
	startLicenseSync   = "POST /connect/license-syncs"
	uploadStatistics   = "POST /connect/server-statistics"
)

func (e *contribEnv) licenseStatus(t *testing.T) *featuregatev1.LicenseSyncStatus {
	t.Helper()
	resp, err := e.gate.GetLicenseSyncStatus(context.Background(), &featuregatev1.GetLicenseSyncStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetStatus()
}

func (e *contribEnv) statsStatus(t *testing.T) *featuregatev1.ServerStatisticsStatus {
	t.Helper()
	resp, err := e.gate.GetServerStatisticsStatus(context.Background(), &featuregatev1.GetServerStatisticsStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetStatus()
}

// jobRan waits until a job's run that ended after since succeeded.
func jobRan(t *testing.T, what string, since time.Time, job func() *featuregatev1.JobStatus) *featuregatev1.JobStatus {
	t.Helper()
	var st *featuregatev1.JobStatus
	testenv.EventuallyErr(t, contribWait, what, func() error {
		st = job()
		if st.GetState() != featuregatev1.JobState_JOB_STATE_SCHEDULED || !st.GetLastSuccessTime().AsTime().After(since) {
			return fmt.Errorf("status %v", st)
		}
		return nil
	})
	return st
}

// quietFor checks that route gets no request for a while: several of the
// jobs' 50 ms polls.
func (e *contribEnv) quietFor(t *testing.T, route, what string) {
	t.Helper()
	before := e.b.Emu.Count(route)
	time.Sleep(500 * time.Millisecond)
	if n := e.b.Emu.Count(route) - before; n != 0 {
		t.Errorf("%s: %d requests of %s", what, n, route)
	}
}

func (e *contribEnv) reportUsers(t *testing.T, users ...*featuregatev1.LicensedUser) int64 {
	t.Helper()
	resp, err := e.gate.ReportLicensedUsers(context.Background(), &featuregatev1.ReportLicensedUsersRequest{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetLicensedUsers()
}

// License sync sends only hashes of the server's users' ids and email
// addresses, to the connected enterprise, while the feature works: off,
// nothing leaves; on, a full sync at once, which GitHub.com counts (a
// person with accounts on both consumes one seat) and the status reads
// back; a user removed and the feature switched again, the count follows;
// GitHub.com failing for a while, the sync is retried and the count is
// the same, nothing doubled.
func TestLicenseSyncCountsPeopleOnce(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startGates(t, dsn, 1, brokertest.Options{Enterprise: "octo-ent", AppPermissions: jobPerms})
		emu := e.b.Emu
		for _, login := range []string{"mona-cloud", "hubot-cloud"} {
			emu.AddUser(login)
			emu.AddMember("octo-org", login)
		}
		if err := emu.SetEmails("mona-cloud", "mona@example.com"); err != nil {
			t.Fatal(err)
		}
		// Reported while off: kept (hashed), not sent.
		if n := e.reportUsers(t,
			&featuregatev1.LicensedUser{UserId: "17", Emails: []string{"Mona@Example.com", "mona@home.example"}},
			&featuregatev1.LicensedUser{UserId: "18", Emails: []string{"alice@corp.example"}},
			&featuregatev1.LicensedUser{UserId: "19", Emails: []string{"bob@corp.example"}}); n != 3 {
			t.Fatalf("licensed users held: %d, want 3", n)
		}
		e.quietFor(t, startLicenseSync, "license sync off")
		if st := e.licenseStatus(t); st.GetJob().GetState() != featuregatev1.JobState_JOB_STATE_OFF {
			t.Errorf("status while off: %v", st)
		}

		// GitHub.com fails the first tries: retried, then done once.
		emu.SetFaults(ghemu.Faults{ServerErrors: 2})
		t0 := time.Now()
		e.switchFeature(t, licenseSyncFeature, true)
		job := jobRan(t, "the license sync", t0, func() *featuregatev1.JobStatus { return e.licenseStatus(t).GetJob() })
		st := e.licenseStatus(t)
		// octo-org's two members, mona among them, and alice and bob.
		if st.GetLicensedUsers() != 3 || st.GetSeatsConsumed() != 4 || st.GetGithubSyncStatus() != "success" || st.GetGithubSyncTime() == nil {
			t.Errorf("after the sync: %v", st)
		}
		if !strings.Contains(job.GetLastResult(), "3 licensed users sent (hashed); GitHub.com counts 4 of ") || job.GetConnectionId() != e.b.ConnID {
			t.Errorf("job: %v", job)
		}

		// Only hashes left: no id, address or name in any upload.
		uploads := emu.LicenseUploads("octo-ent")
		if len(uploads) == 0 {
			t.Fatal("no upload recorded")
		}
		all := string(slices.Concat(uploads...))
		for _, plain := range []string{"mona", "example", "alice", "bob", `"17"`, `"18"`} {
			if strings.Contains(strings.ToLower(all), plain) {
				t.Errorf("an upload holds %q: %s", plain, all)
			}
		}
		if !strings.Contains(all, licensesync.HashEmail("mona@example.com")) || !strings.Contains(all, licensesync.HashID("17")) {
			t.Errorf("the uploads lack mona's hashes: %s", all)
		}
		var batch struct {
			Users []map[string]json.RawMessage `json:"users"`
		}
		if err := json.Unmarshal(uploads[len(uploads)-1], &batch); err != nil {
			t.Fatal(err)
		}
		for _, u := range batch.Users {
			for k := range u {
				if k != "user_id_sha256" && k != "email_sha256s" {
					t.Errorf("an uploaded user carries %q", k)
				}
			}
		}

		// bob goes; the next run (the feature switched off and on: at once)
		// sends two, and GitHub.com counts three people.
		e.reportUsers(t, &featuregatev1.LicensedUser{UserId: "19", Removed: true})
		e.switchFeature(t, licenseSyncFeature, false)
		testenv.EventuallyErr(t, contribWait, "the sync is off", func() error {
			if s := e.licenseStatus(t).GetJob().GetState(); s != featuregatev1.JobState_JOB_STATE_OFF {
				return fmt.Errorf("state %v", s)
			}
			return nil
		})
		e.quietFor(t, startLicenseSync, "license sync off again")
		t1 := time.Now()
		e.switchFeature(t, licenseSyncFeature, true)
		jobRan(t, "the second license sync", t1, func() *featuregatev1.JobStatus { return e.licenseStatus(t).GetJob() })
		if st := e.licenseStatus(t); st.GetLicensedUsers() != 2 || st.GetSeatsConsumed() != 3 {
			t.Errorf("after bob left: %v", st)
		}
	})
}

// An organization connection: license sync is on but does not apply, says
// why, and sends nothing.
func TestLicenseSyncNeedsAnEnterprise(t *testing.T) {
	t.Parallel()
	e := startGates(t, testenv.SQLite(t), 1, brokertest.Options{AppPermissions: jobPerms})
	e.reportUsers(t, &featuregatev1.LicensedUser{UserId: "1", Emails: []string{"a@corp.example"}})
	e.switchFeature(t, licenseSyncFeature, true)
	testenv.EventuallyErr(t, contribWait, "license sync says it does not apply", func() error {
		job := e.licenseStatus(t).GetJob()
		if job.GetState() != featuregatev1.JobState_JOB_STATE_NOT_APPLICABLE || !strings.Contains(job.GetMessage(), "the organization octo-org") {
			return fmt.Errorf("status %v", job)
		}
		return nil
	})
	e.quietFor(t, startLicenseSync, "an organization connection")
	if n := e.b.Emu.Count(startLicenseSync); n != 0 {
		t.Errorf("%d license syncs started for an organization", n)
	}
}

// schemaStrings are the only string fields of an upload of server
// statistics; everything else is a number, an object of them, or the
// list of features on.
var schemaStrings = []string{"server_id", "collection_date", "schema_version", "ghes_version", "host_name", "dormancy_threshold", "percentage_of_repos_using_actions"}

// noPerUserData walks an upload and fails on any string that is not one
// of schemaStrings, and on any list but the features on: so no login,
// address, repository name or content can be in it.
func noPerUserData(t *testing.T, v any, key string) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			noPerUserData(t, val, k)
		}
	case []any:
		if key != "features_enabled" {
			t.Errorf("an upload holds a list %q: %v", key, x)
		}
		for _, f := range x {
			if s, ok := f.(string); !ok || !strings.Contains(s, "_") {
				t.Errorf("features_enabled holds %v", f)
			}
		}
	case string:
		if !slices.Contains(schemaStrings, key) {
			t.Errorf("an upload holds the string %q = %q", key, x)
		}
	case float64, bool:
	default:
		t.Errorf("an upload holds %q = %v (%T)", key, v, v)
	}
}

// Server Statistics sends the day's aggregate counts while the feature
// works, and nothing per user or repository: GitHub.com reads them back
// through its public route; before the server reports anything, nothing
// is sent; GitHub.com failing for a while, the upload is retried and the
// day is held once.
func TestServerStatisticsSendsAggregatesOnly(t *testing.T) {
	t.Parallel()
	featuregate.Schema.Stores(t, func(t *testing.T, dsn string) {
		e := startGates(t, dsn, 1, brokertest.Options{AppPermissions: jobPerms})
		emu := e.b.Emu
		t0 := time.Now()
		e.switchFeature(t, statsFeature, true)
		job := jobRan(t, "a run with nothing to send", t0, func() *featuregatev1.JobStatus { return e.statsStatus(t).GetJob() })
		if !strings.Contains(job.GetLastResult(), "nothing sent: the server has reported no statistics yet") || emu.Count(uploadStatistics) != 0 {
			t.Errorf("before any report: %v, %d uploads", job, emu.Count(uploadStatistics))
		}
		// A server's day, with users that have logins and repositories that
		// have names: only the totals go.
		if _, err := e.gate.ReportServerStatistics(context.Background(), &featuregatev1.ReportServerStatisticsRequest{Statistics: &featuregatev1.ServerStatistics{
			GheStats: &featuregatev1.GheStats{
				Users: &featuregatev1.GheStats_Users{TotalUsers: 120, AdminUsers: 3, SuspendedUsers: 2},
				Repos: &featuregatev1.GheStats_Repos{TotalRepos: 340, RootRepos: 300, ForkRepos: 40, OrgRepos: 250, TotalPushes: 9000, TotalWikis: 12},
				Pulls: &featuregatev1.GheStats_Pulls{TotalPulls: 800, MergedPulls: 600, MergeablePulls: 150, UnmergeablePulls: 50},
			},
			DormantUsers: &featuregatev1.DormantUsers{TotalDormantUsers: 14, DormancyThreshold: "90 days"},
			ActionsStats: &featuregatev1.ActionsStats{NumberOfReposUsingActions: 85, PercentageOfReposUsingActions: "25.00"},
		}}); err != nil {
			t.Fatal(err)
		}
		emu.SetFaults(ghemu.Faults{ServerErrors: 2})
		e.switchFeature(t, statsFeature, false)
		t1 := time.Now()
		e.switchFeature(t, statsFeature, true)
		jobRan(t, "the upload", t1, func() *featuregatev1.JobStatus { return e.statsStatus(t).GetJob() })
		st := e.statsStatus(t)
		today := time.Now().UTC().Format(time.DateOnly)
		if st.GetGithubDays() != 1 || st.GetGithubLastDate() != today || st.GetLastReportTime() == nil {
			t.Errorf("status: %v", st)
		}
		held := emu.ServerStatistics("octo-org")
		if len(held) != 1 {
			t.Fatalf("GitHub.com holds %d days, want 1", len(held))
		}
		var day struct {
			ServerID string `json:"server_id"`
			GheStats struct {
				Users struct {
					TotalUsers int `json:"total_users"`
				} `json:"users"`
			} `json:"ghe_stats"`
			GithubConnect struct {
				Features []string `json:"features_enabled"`
			} `json:"github_connect"`
		}
		if err := json.Unmarshal(held[0], &day); err != nil {
			t.Fatal(err)
		}
		if day.ServerID != e.b.ConnID || day.GheStats.Users.TotalUsers != 120 || !slices.Contains(day.GithubConnect.Features, "server_statistics") {
			t.Errorf("held: %s", held[0])
		}
		uploads := emu.ServerStatisticsUploads("octo-org")
		if len(uploads) < 1 {
			t.Fatal("no upload recorded")
		}
		for _, raw := range uploads {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			noPerUserData(t, v, "")
		}

		e.switchFeature(t, statsFeature, false)
		testenv.EventuallyErr(t, contribWait, "the upload is off", func() error {
			if s := e.statsStatus(t).GetJob().GetState(); s != featuregatev1.JobState_JOB_STATE_OFF {
				return fmt.Errorf("state %v", s)
			}
			return nil
		})
		e.quietFor(t, uploadStatistics, "server statistics off")
	})
}

// BenchmarkLicenseSync20k: 20,000 licensed users reported in calls of
// 1,000, then the feature turned on: the time until GitHub.com has
// counted them (the upload in 20 batches, then the read-back), against
// the time the same users took to be reported and stored, in the same
// run. Goals: the sync within 2× the reporting; the heap in use grows by
// under 50 MB (users are read and sent a batch at a time).
func BenchmarkLicenseSync20k(b *testing.B) {
	const users = 20_000
	for i := range b.N {
		e := startGates(b, testenv.SQLite(b), 1, brokertest.Options{Enterprise: "octo-ent", AppPermissions: jobPerms})
		batch := make([]*featuregatev1.LicensedUser, 0, licensesync.Batch)
		start := time.Now()
		for u := range users {
			batch = append(batch, &featuregatev1.LicensedUser{UserId: fmt.Sprintf("%d-%d", i, u), Emails: []string{fmt.Sprintf("user%d@corp.example", u)}})
			if len(batch) == cap(batch) {
				if _, err := e.gate.ReportLicensedUsers(context.Background(), &featuregatev1.ReportLicensedUsersRequest{Users: batch}); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		reported := time.Since(start)
		before, peak, stop := sampleHeap(10 * time.Millisecond)
		start = time.Now()
		e.switchFeature(b, licenseSyncFeature, true)
		var st *featuregatev1.LicenseSyncStatus
		testenv.Eventually(b, 2*time.Minute, "the license sync", func() bool {
			resp, err := e.gate.GetLicenseSyncStatus(context.Background(), &featuregatev1.GetLicenseSyncStatusRequest{})
			st = resp.GetStatus()
			return err == nil && st.GetJob().GetState() == featuregatev1.JobState_JOB_STATE_SCHEDULED
		})
		synced := time.Since(start)
		stop()
		if st.GetSeatsConsumed() < users {
			b.Fatalf("GitHub.com counts %d seats", st.GetSeatsConsumed())
		}
		b.ReportMetric(reported.Seconds(), "report-s")
		b.ReportMetric(synced.Seconds(), "sync-s")
		b.ReportMetric(synced.Seconds()/reported.Seconds(), "sync/report")
		b.ReportMetric(users/synced.Seconds(), "users/s")
		b.ReportMetric(float64(*peak-before)/1e6, "heap-inuse-growth-MB")
	}
}
