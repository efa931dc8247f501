// CAF peer of `tools/weft bench actors`: the same measurements as the weft
// half and peer_erlang.erl, printed as one JSON object on stdout.
//
// Written for CAF 0.17 (Debian bookworm's libcaf-dev 0.17.6): atoms are
// atom_constant<atom("...")>, and the config key is "scheduler.max-threads"
// (0.18+ spells it "caf.scheduler.max-threads").
//
// build: tools/bench/actors/build_caf.sh OUT   (g++ -O2 ... -lcaf_core)
// run:   OUT [--quick]
//
// Output keys:
//   ask_rps        sequential request/reply round trips per second: a client
//                  actor does request(server, ...).then(...) and sends the
//                  next request from inside the reply handler; default
//                  scheduler (one worker per core)
//   ask_rps_s1     the same with scheduler.max-threads=1
//   spawn_per_s    idle event-based actors spawned per second from the main
//                  thread (system.spawn); only the spawn loop is timed; the
//                  actors are then killed and awaited (untimed)
//   bytes_per_idle_actor  RSS growth (/proc/self/statm) over N idle actors,
//                  measured once all of them have run their init, divided by N
//   bytes_one_idle_actor  sizeof the actor object (actor_storage<idle_actor>),
//                  i.e. without its mailbox/behavior allocations
//   version        "CAF 0.17.6"
// Rates are the median of `samples` samples (each ~100-300 ms).

#include <caf/all.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace caf;
using clk = std::chrono::steady_clock;

using ping_atom = atom_constant<atom("ping")>;
using run_atom = atom_constant<atom("run")>;

namespace
{

double secs_since(clk::time_point t0)
{
    return std::chrono::duration<double>(clk::now() - t0).count();
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

long rss_bytes()
{
    long size = 0, resident = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr)
        return -1;
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    std::fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

// -- ask: a server replying to each ping, a client doing one at a time -------

behavior server(event_based_actor *)
{
    return {
        [](ping_atom, int x) { return x; },
    };
}

struct client_state {
    actor srv;
    response_promise rp;
    int left = 0;
    clk::time_point t0;
};

void step(stateful_actor<client_state> *self)
{
    auto &st = self->state;
    if (st.left == 0) {
        st.rp.deliver(secs_since(st.t0));
        return;
    }
    --st.left;
    self->request(st.srv, infinite, ping_atom::value, st.left)
        .then([=](int) { step(self); },
              [=](error &err) { self->state.rp.deliver(std::move(err)); });
}

behavior client(stateful_actor<client_state> *self, actor srv)
{
    self->state.srv = std::move(srv);
    return {
        [=](run_atom, int n) {
            auto &st = self->state;
            st.rp = self->make_response_promise();
            st.left = n;
            st.t0 = clk::now();
            step(self);
            return st.rp;
        },
    };
}

// Seconds for n sequential round trips.
double ask_once(scoped_actor &self, const actor &cl, int n)
{
    double secs = -1;
    self->request(cl, infinite, run_atom::value, n)
        .receive([&](double s) { secs = s; },
                 [&](error &err) {
                     std::fprintf(stderr, "peer_caf: ask failed: %s\n", to_string(err).c_str());
                     std::exit(1);
                 });
    return secs;
}

// Round trips per second, median of `samples`; n calibrated to ~150 ms.
double measure_ask(actor_system &sys, bool quick, int samples)
{
    auto srv = sys.spawn(server);
    auto cl = sys.spawn(client, srv);
    scoped_actor self{sys};
    int n = quick ? 2000 : 1000;
    if (!quick) {
        double t;
        while ((t = ask_once(self, cl, n)) < 0.05 && n < (1 << 28))
            n *= 2;
        n = std::max(1000, static_cast<int>(n * 0.15 / t));
    }
    std::vector<double> rates;
    for (int i = 0; i < samples; ++i)
        rates.push_back(n / ask_once(self, cl, n));
    self->send_exit(cl, exit_reason::kill);
    self->send_exit(srv, exit_reason::kill);
    return median(rates);
}

// -- idle actors ---------------------------------------------------------------

std::atomic<long> started{0};

class idle_actor : public event_based_actor
{
  public:
    explicit idle_actor(actor_config &cfg) : event_based_actor(cfg) {}

    behavior make_behavior() override
    {
        started.fetch_add(1, std::memory_order_relaxed);
        return {
            [](ping_atom) {},
        };
    }
};

void kill_all(actor_system &sys, std::vector<actor> &v)
{
    for (auto &a : v)
        anon_send_exit(a, exit_reason::kill);
    v.clear();
    sys.registry().await_running_count_equal(0);
}

void await_started(long n)
{
    while (started.load() < n)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

double measure_spawn(actor_system &sys, int n, int samples)
{
    std::vector<actor> v;
    v.reserve(n);
    std::vector<double> rates;
    for (int i = 0; i < samples; ++i) {
        started = 0;
        auto t0 = clk::now();
        for (int j = 0; j < n; ++j)
            v.push_back(sys.spawn<idle_actor>());
        double t = secs_since(t0);
        rates.push_back(n / t);
        await_started(n);
        kill_all(sys, v);
    }
    return median(rates);
}

double measure_memory(actor_system &sys, int n)
{
    std::vector<actor> v(n); // touched now, so its pages are not counted
    v.clear();
    started = 0;
    long before = rss_bytes();
    for (int j = 0; j < n; ++j)
        v.push_back(sys.spawn<idle_actor>());
    await_started(n);
    long after = rss_bytes();
    kill_all(sys, v);
    return static_cast<double>(after - before) / n;
}

} // namespace

int main(int argc, char **argv)
{
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else {
            std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    int samples = quick ? 3 : 7;
    int spawn_n = quick ? 2000 : 100000;
    int mem_n = quick ? 2000 : 100000;

    double ask_rps, spawn_per_s, bytes_per;
    size_t workers, workers_s1;
    {
        actor_system_config cfg;
        actor_system sys{cfg};
        workers = sys.scheduler().num_workers();
        // Memory first, while the heap is fresh.
        bytes_per = measure_memory(sys, mem_n);
        spawn_per_s = measure_spawn(sys, spawn_n, samples);
        ask_rps = measure_ask(sys, quick, samples);
    }
    double ask_rps_s1;
    {
        actor_system_config cfg;
        cfg.set("scheduler.max-threads", 1);
        actor_system sys{cfg};
        workers_s1 = sys.scheduler().num_workers();
        ask_rps_s1 = measure_ask(sys, quick, samples);
    }
    if (workers_s1 != 1) {
        std::fprintf(stderr, "peer_caf: scheduler.max-threads=1 gave %zu workers\n", workers_s1);
        return 1;
    }

    std::printf("{\"version\": \"CAF %d.%d.%d\", \"quick\": %s, \"samples\": %d, "
                "\"schedulers\": %zu, \"schedulers_s1\": %zu, "
                "\"ask_rps\": %.0f, \"ask_rps_s1\": %.0f, "
                "\"spawn_per_s\": %.0f, \"spawn_n\": %d, "
                "\"bytes_per_idle_actor\": %.1f, \"idle_actors_n\": %d, "
                "\"bytes_one_idle_actor\": %zu}\n",
                CAF_MAJOR_VERSION, CAF_MINOR_VERSION, CAF_PATCH_VERSION, quick ? "true" : "false",
                samples, workers, workers_s1, ask_rps, ask_rps_s1, spawn_per_s, spawn_n, bytes_per,
                mem_n, sizeof(actor_storage<idle_actor>));
    return 0;
}
