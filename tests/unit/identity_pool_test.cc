#include "common/identity_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "sandbox/error.h"

namespace {

namespace fs = std::filesystem;
using launcher::IdentityPool;
using launcher::IdRange;

// Allocates until the pool is exhausted; the ids in order.
std::vector<std::uint32_t> drain(IdentityPool& pool) {
    std::vector<std::uint32_t> ids;
    while (const std::optional<std::uint32_t> id = pool.allocate())
        ids.push_back(*id);
    return ids;
}

TEST(IdentityPool, DefaultRangeIsTheDocumentedOne) {
    const IdRange range;
    EXPECT_EQ(range.first, 0x70000000u);
    EXPECT_EQ(range.count, 65536u);
    EXPECT_EQ(range.last(), 1879113727u);
}

TEST(IdentityPool, TenThousandKeysGetDistinctIdsInTheRange) {
    IdentityPool pool(IdRange{}, {});
    std::set<std::uint32_t> seen;
    for (int i = 0; i < 10000; ++i) {
        const std::optional<std::uint32_t> id = pool.allocate();
        ASSERT_TRUE(id.has_value()) << i;
        EXPECT_TRUE(pool.contains(*id)) << *id;
        EXPECT_TRUE(seen.insert(*id).second) << "handed out twice: " << *id;
    }
    EXPECT_EQ(pool.in_use(), 10000u);
    EXPECT_EQ(pool.capacity(), 65536u);
}

// 10,000 live keys with a steady churn of random ones ending and new ones
// starting: every live id stays distinct, and the work stays logarithmic
// (a linear scan per allocation would take minutes here).
TEST(IdentityPool, ChurnAroundTenThousandLiveKeysNeverHandsOutAHeldId) {
    std::set<std::uint32_t> excluded;
    for (std::uint32_t id = IdRange{}.first; id < IdRange{}.first + 65536; id += 7)
        excluded.insert(id);
    IdentityPool pool(IdRange{}, excluded);
    std::vector<std::uint32_t> live;
    std::set<std::uint32_t> held;
    for (int i = 0; i < 10000; ++i) {
        const std::uint32_t id = pool.allocate().value();
        ASSERT_TRUE(held.insert(id).second);
        live.push_back(id);
    }
    std::mt19937 random(42);
    for (int round = 0; round < 200000; ++round) {
        const std::size_t victim = random() % live.size();
        pool.release(live[victim]);
        held.erase(live[victim]);
        const std::uint32_t id = pool.allocate().value();
        ASSERT_FALSE(excluded.contains(id)) << id;
        ASSERT_TRUE(held.insert(id).second) << "handed out while held: " << id;
        live[victim] = id;
    }
    EXPECT_EQ(pool.in_use(), 10000u);
}

TEST(IdentityPool, ExhaustionReturnsNulloptUntilAnIdIsReleased) {
    IdentityPool pool(IdRange{1000, 5}, {});
    EXPECT_EQ(drain(pool), (std::vector<std::uint32_t>{1000, 1001, 1002, 1003, 1004}));
    EXPECT_FALSE(pool.allocate().has_value());
    EXPECT_EQ(pool.in_use(), 5u);
    pool.release(1002);
    EXPECT_EQ(pool.allocate(), 1002u);
    EXPECT_FALSE(pool.allocate().has_value());
}

TEST(IdentityPool, AReleasedIdComesBackOnlyAfterTheRestOfTheRange) {
    IdentityPool pool(IdRange{1000, 10}, {});
    EXPECT_EQ(pool.allocate(), 1000u);
    EXPECT_EQ(pool.allocate(), 1001u);
    pool.release(1000);
    EXPECT_FALSE(pool.is_held(1000));
    // Lowest-free would give 1000 back at once.
    EXPECT_EQ(drain(pool),
              (std::vector<std::uint32_t>{1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1000}));

    // The same after a wrap-around: released ids are offered in range order
    // from where the last allocation stopped.
    pool.release(1005);
    pool.release(1003);
    pool.release(1008);
    EXPECT_EQ(drain(pool), (std::vector<std::uint32_t>{1003, 1005, 1008}));
}

TEST(IdentityPool, StartAtSetsWhereAllocationBegins) {
    IdentityPool pool(IdRange{1000, 4}, {});
    pool.start_at(1002);
    EXPECT_EQ(drain(pool), (std::vector<std::uint32_t>{1002, 1003, 1000, 1001}));
    IdentityPool outside(IdRange{1000, 4}, {});
    outside.start_at(1005);  // wrapped into the range: 1000 + 5 % 4
    EXPECT_EQ(outside.allocate(), 1001u);
}

TEST(IdentityPool, ReserveRefusesHeldOutOfRangeAndExcludedIds) {
    IdentityPool pool(IdRange{1000, 10}, {5, 1003, 2000});
    EXPECT_EQ(pool.capacity(), 9u);
    EXPECT_EQ(pool.excluded(), 1u);
    EXPECT_FALSE(pool.reserve(999));
    EXPECT_FALSE(pool.reserve(1010));
    EXPECT_FALSE(pool.reserve(5));
    EXPECT_FALSE(pool.reserve(0));
    EXPECT_FALSE(pool.reserve(1003));  // excluded
    EXPECT_TRUE(pool.reserve(1004));
    EXPECT_TRUE(pool.is_held(1004));
    EXPECT_FALSE(pool.reserve(1004));  // already held
    EXPECT_TRUE(pool.reserve(1009));   // the last id
    EXPECT_TRUE(pool.reserve(1000));   // the first id
    EXPECT_EQ(pool.in_use(), 3u);
    EXPECT_EQ(drain(pool), (std::vector<std::uint32_t>{1001, 1002, 1005, 1006, 1007, 1008}));
    // An allocated id cannot be reserved again either.
    EXPECT_FALSE(pool.reserve(1001));
    pool.release(1004);
    EXPECT_TRUE(pool.reserve(1004));
}

TEST(IdentityPool, ExcludedIdsAreNeverAllocated) {
    IdentityPool pool(IdRange{1000, 10}, {1000, 1001, 1005, 1009, 42});
    EXPECT_EQ(pool.capacity(), 6u);
    const std::vector<std::uint32_t> ids = drain(pool);
    EXPECT_EQ(ids, (std::vector<std::uint32_t>{1002, 1003, 1004, 1006, 1007, 1008}));
    EXPECT_EQ(pool.in_use(), pool.capacity());
    for (const std::uint32_t id : ids)
        pool.release(id);
    EXPECT_EQ(drain(pool).size(), 6u);

    IdentityPool none(IdRange{1000, 2}, {1000, 1001});
    EXPECT_EQ(none.capacity(), 0u);
    EXPECT_FALSE(none.allocate().has_value());
}

TEST(IdentityPool, ReleasingAnIdThatIsNotHeldChangesNothing) {
    IdentityPool pool(IdRange{1000, 3}, {1001});
    pool.release(1000);  // never allocated
    pool.release(1001);  // excluded
    pool.release(7);     // out of range
    EXPECT_EQ(pool.in_use(), 0u);
    const std::uint32_t id = pool.allocate().value();
    pool.release(id);
    pool.release(id);  // twice
    EXPECT_EQ(drain(pool), (std::vector<std::uint32_t>{1002, 1000}));
}

TEST(IdentityPool, ContainsIsTheRange) {
    const IdentityPool pool(IdRange{1000, 10}, {1003});
    EXPECT_FALSE(pool.contains(999));
    EXPECT_TRUE(pool.contains(1000));
    EXPECT_TRUE(pool.contains(1003));  // excluded, but in range
    EXPECT_TRUE(pool.contains(1009));
    EXPECT_FALSE(pool.contains(1010));
    EXPECT_FALSE(pool.contains(0));
}

TEST(IdentityPool, ImpossibleRangesAreRefused) {
    EXPECT_THROW((void)IdentityPool(IdRange{1000, 0}, {}), std::invalid_argument);
    EXPECT_THROW((void)IdentityPool(IdRange{0, 10}, {}), std::invalid_argument);
    // Would include (uid_t)-1, or wrap around.
    EXPECT_THROW((void)IdentityPool(IdRange{4294967295u, 1}, {}), std::invalid_argument);
    EXPECT_THROW((void)IdentityPool(IdRange{4294967290u, 10}, {}), std::invalid_argument);
    IdentityPool top(IdRange{4294967290u, 5}, {});
    EXPECT_EQ(drain(top).back(), 4294967294u);
}

// A fresh directory under /tmp for one test, removed afterwards.
class IdsNamedInTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "pl-identity-test.XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        root_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    fs::path write(const std::string& name, const std::string& text) {
        const fs::path path = root_ / name;
        std::ofstream(path, std::ios::binary) << text;
        return path;
    }
    fs::path root_;
};

TEST_F(IdsNamedInTest, ReadsUidsAndGidsAndSkipsMalformedLines) {
    const fs::path passwd = write("passwd",
                                  "root:x:0:0:root:/root:/bin/bash\n"
                                  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                                  "svc:x:1879048200:1879048201:svc:/:/bin/false\n"
                                  "\n"
                                  "garbage\n"
                                  "short:x:42\n"          // 3 fields: no gid column
                                  "neg:x:-5:-6::/:\n"     // negative
                                  "sp:x: 12 :13::/:\n"    // spaces: the uid is skipped
                                  "hex:x:0x10:1e3::/:\n"  // not decimal
                                  "big:x:4294967296:99999999999999999999::/:\n"  // too large
                                  "max:x:4294967295:7::/:\n"
                                  "+::::::\n"  // NIS compat
                                  "+nis\n"
                                  "crlf:x:4000:4001::/:/bin/sh\r\n"
                                  "last:x:3000:3001::/:/bin/sh");  // no final newline
    const fs::path group = write("group",
                                 "root:x:0:\n"
                                 "staff:x:50:alice,bob\n"
                                 "svc:x:1879048300:\n"
                                 "bad:x:abc:\n"
                                 "x\n"
                                 "nomembers:x:60\n"
                                 "::\n"
                                 "::::::::::::::\n");
    EXPECT_EQ(launcher::ids_named_in(passwd, group),
              (std::set<std::uint32_t>{0, 7, 13, 50, 60, 3000, 3001, 4000, 4001, 65534, 1879048200,
                                       1879048201, 1879048300, 4294967295u}));
}

TEST_F(IdsNamedInTest, BinaryGarbageDoesNotCrash) {
    std::string junk;
    std::mt19937 random(7);
    for (int i = 0; i < 100000; ++i)
        junk += static_cast<char>(random() % 5 == 0 ? ':' : random() % 256);
    junk += std::string("\n\0:x:12:34\n", 11);
    const fs::path passwd = write("passwd", junk);
    const std::set<std::uint32_t> ids = launcher::ids_named_in(passwd, root_ / "none");
    EXPECT_TRUE(ids.contains(12));  // a line that starts with a NUL
    EXPECT_TRUE(ids.contains(34));
}

TEST_F(IdsNamedInTest, AMissingFileNamesNothingAnUnreadableOneThrows) {
    const fs::path passwd = write("passwd", "a:x:1000:1001::/:\n");
    EXPECT_EQ(launcher::ids_named_in(passwd, root_ / "no-group"),
              (std::set<std::uint32_t>{1000, 1001}));
    EXPECT_TRUE(launcher::ids_named_in(root_ / "none", root_ / "neither").empty());
    fs::create_directory(root_ / "dir");
    try {
        launcher::ids_named_in(passwd, root_ / "dir");
        FAIL() << "no error for a directory";
    } catch (const sandbox::SysError& e) {
        EXPECT_EQ(e.code(), EISDIR);
        EXPECT_NE(std::string(e.what()).find((root_ / "dir").string()), std::string::npos)
            << e.what();
    }
}

TEST(IdsNamedIn, TheHostsOwnFilesNameRoot) {
    if (!fs::exists("/etc/passwd")) GTEST_SKIP() << "no /etc/passwd on this host";
    EXPECT_TRUE(launcher::ids_named_in("/etc/passwd", "/etc/group").contains(0));
}

}  // namespace
