// Golden files: each case exports a set of the fixture patterns
// (tests/export/patterns) with some options and compares the bytes with
// golden/<case>.yaml: the notes as leading comments, then the objects.
// PL_UPDATE_GOLDEN=1 rewrites the files; review the diff before committing.
// The same files are checked by the kubernetes validators
// (tests/kubernetes), so what is golden is also valid.
#include "export/kubernetes_export.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "config/config.h"
#include "config/manifest.h"

namespace launcher::kubernetes {
namespace {

namespace fs = std::filesystem;
const fs::path kDir = PL_EXPORT_TESTS_DIR;

struct Case {
    std::vector<std::string> patterns;
    bool with_config = false;
    ExportOptions options;
    std::map<std::string, std::vector<sandbox::Ipv4Address>> names;
};

Case make(std::vector<std::string> patterns, bool with_config = false) {
    Case c;
    c.patterns = std::move(patterns);
    c.with_config = with_config;
    return c;
}

std::map<std::string, Manifest> chosen(const std::vector<std::string>& names) {
    Discovery found = discover_patterns(kDir / "patterns");
    EXPECT_TRUE(found.errors.empty()) << (found.errors.empty() ? "" : found.errors[0].what());
    std::map<std::string, Manifest> out;
    for (const auto& n : names)
        out.insert(*found.patterns.find(n));
    return out;
}

KubernetesExport run(const Case& c) {
    const LauncherConfig config =
        c.with_config ? load_config(kDir / "config.yaml") : LauncherConfig{};
    return export_kubernetes(chosen(c.patterns), config, c.options, [&](const std::string& name) {
        const auto it = c.names.find(name);
        return it == c.names.end() ? std::vector<sandbox::Ipv4Address>{} : it->second;
    });
}

// What the golden file holds; also what `patternctl export kubernetes`
// prints (the notes on stderr there).
std::string golden_text(const KubernetesExport& e) {
    std::string text;
    for (const std::string& n : e.notes)
        text += "# note: " + n + "\n";
    return text + to_yaml_stream(e);
}

std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void expect_golden(const std::string& name, const Case& c) {
    const KubernetesExport e = run(c);
    const std::string text = golden_text(e);
    EXPECT_EQ(text, golden_text(run(c))) << "the same input gave different bytes";
    const fs::path file = kDir / "golden" / (name + ".yaml");
    if (const char* update = std::getenv("PL_UPDATE_GOLDEN");
        update && std::string(update) == "1") {
        std::ofstream(file, std::ios::binary) << text;
        for (const auto& [profile, json] : e.seccomp_profiles)
            std::ofstream(kDir / "golden" / "seccomp" / profile, std::ios::binary) << json;
        GTEST_SKIP() << "rewrote " << file;
    }
    ASSERT_TRUE(fs::exists(file)) << file << " is missing: run with PL_UPDATE_GOLDEN=1";
    EXPECT_EQ(text, read(file)) << "differs from " << file << " (PL_UPDATE_GOLDEN=1 rewrites it)";
    for (const auto& [profile, json] : e.seccomp_profiles)
        EXPECT_EQ(json, read(kDir / "golden" / "seccomp" / profile)) << profile;
}

sandbox::Ipv4Address ip(const char* text) {
    return *sandbox::parse_ipv4_address(text);
}

TEST(KubernetesExportGolden, NoneIsOneDeploymentInTheSharedNamespace) {
    expect_golden("none", make({"registry"}));
}

TEST(KubernetesExportGolden, NamespaceIsADeploymentPerTenantWithTheTenantsCeilings) {
    // Tenants from the config: namespace_quotas, egress.tenants, warm_pool.tenants.
    expect_golden("namespace", make({"consumer"}, true));
}

TEST(KubernetesExportGolden, SessionIsAPodTemplateAndAPodPerNamedSession) {
    Case c = make({"session-worker"});
    c.options.tenants = {"tenant-a"};
    c.options.sessions = {{"tenant-a", "s1"}, {"tenant-a", "s_2.x"}};
    expect_golden("session", c);
}

TEST(KubernetesExportGolden, EgressIsTheListAndTheTenantsAdditionsAndNothingElse) {
    Case c = make({"egress-client"}, true);
    c.options.tenants = {"tenant-a", "tenant-b"};
    c.options.never_reach = {*sandbox::parse_ipv4_network("10.96.0.0/12"),
                             *sandbox::parse_ipv4_network("10.30.128.0/17")};
    c.names = {{"db.internal.example", {ip("10.40.0.2"), ip("10.40.0.1"), ip("10.40.0.2")}}};
    expect_golden("egress", c);
}

TEST(KubernetesExportGolden, WeakeningsAreCarriedOverAndFlagged) {
    Case c = make({"weakened"});
    c.options.tenants = {"t1"};
    expect_golden("weakened", c);
}

TEST(KubernetesExportGolden, EveryOptionChangesWhatItSays) {
    Case c = make({"consumer", "registry"});
    c.options.tenants = {"tenant-z"};
    c.options.shared_namespace = "prism-shared";
    c.options.proxy_labels = {{"app", "proxy"}, {"tier", "edge"}};
    c.options.proxy_namespace = "edge";
    c.options.images = {{"consumer", "registry.example/consumer@sha256:0123"}};
    c.options.image_prefix = "registry.example/patterns/";
    c.options.grpc_port = 9000;
    c.options.health_port = 9001;
    c.options.seccomp_subdir = "tenants";
    expect_golden("options", c);
}

TEST(KubernetesExport, TheSharedPatternGetsNoTenantsAdditions) {
    // A shared key serves every tenant: tenant-a's egress must not open for it.
    const KubernetesExport e = run(make({"registry"}, true));
    for (const auto& o : e.objects) {
        EXPECT_NE(o.kind, "ResourceQuota");
        EXPECT_EQ(o.body.dump().find("10.120.0.5"), std::string::npos) << o.kind << " " << o.name;
    }
}

TEST(KubernetesExport, EachPodIsSelectedByExactlyItsOwnNetworkPolicy) {
    Case c = make({"consumer", "egress-client"}, true);
    c.names = {{"db.internal.example", {ip("10.40.0.1")}}};
    const KubernetesExport e = run(c);
    int deployments = 0;
    for (const auto& d : e.objects) {
        if (d.kind != "Deployment") continue;
        ++deployments;
        const auto& labels = d.body["spec"]["template"]["metadata"]["labels"];
        int selecting = 0;
        for (const auto& p : e.objects) {
            if (p.kind != "NetworkPolicy" || p.namespace_name != d.namespace_name) continue;
            bool all = true;
            for (const auto& [k, v] : p.body["spec"]["podSelector"]["matchLabels"].items())
                all = all && labels.contains(k) && labels[k] == v;
            selecting += all;
        }
        EXPECT_EQ(selecting, 1) << d.namespace_name << "/" << d.name;
    }
    EXPECT_EQ(deployments, 8);  // two patterns, four tenants
}

TEST(KubernetesExport, RefusesWhatItCannotExport) {
    const auto refused = [](Case c, const std::string& words) {
        try {
            run(c);
            ADD_FAILURE() << "accepted; expected: " << words;
        } catch (const ExportError& e) {
            EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
        }
    };
    refused(make({"consumer"}), "need tenants");
    Case bad_tenant = make({"consumer"});
    bad_tenant.options.tenants = {"../x"};
    refused(bad_tenant, "namespace '../x' is invalid");
    Case stray_session = make({"session-worker"});
    stray_session.options.tenants = {"a"};
    stray_session.options.sessions = {{"b", "s1"}};
    refused(stray_session, "not exported (--tenant b)");
    Case unresolved = make({"egress-client"});
    unresolved.options.tenants = {"a"};
    refused(unresolved, "egress host 'db.internal.example' does not resolve");
    Case clash = make({"registry", "consumer"});
    clash.options.tenants = {"prism"};
    refused(clash, "would share the Kubernetes namespace 'prism'");
    Case twice = make({"session-worker"});
    twice.options.tenants = {"a"};
    twice.options.sessions = {{"a", "s1"}, {"a", "s1"}};
    refused(twice, "two objects would be Pod");
}

}  // namespace
}  // namespace launcher::kubernetes
