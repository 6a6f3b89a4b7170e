// A throwaway PostgreSQL server for integration tests.
//
//   pgwire::test::TempPostgres pg;                       // trust auth
//   auto r = pg.run_psql({"-At", "-c", "SELECT 42"});    // r.exit_code, r.out, r.err
//
// With TLS (certificates from test_pki.hpp), TCP connections without it refused:
//
//   const TestPki& pki = TestPki::shared();
//   TempPostgresOptions o;
//   o.tls = TempPostgresTls{pki.server().cert, pki.server().key, pki.ca_cert()};
//   o.hostssl_only = true;
//   TempPostgres pg(o);
//   pg.run_psql({"-h", "localhost", "-c", "SELECT 1"}, {}, pki.libpq_env("verify-full"));
//
// The constructor finds the newest installed server, runs initdb in a fresh directory under /tmp,
// starts postgres on a free 127.0.0.1 port and waits until it accepts connections; the destructor
// stops it (immediate shutdown) and removes the directory. When the test runs as root, initdb and
// postgres run as the `postgres` system user (PostgreSQL refuses to run as root).
//
// Crash guard: the postmaster is a direct child of the test process and is started with
// prctl(PR_SET_PDEATHSIG, SIGQUIT), set after the switch to the postgres user (a credential change
// would clear it). If the test process dies for any reason (a crash, SIGKILL from a ctest timeout),
// the kernel sends the postmaster SIGQUIT, which is PostgreSQL's immediate shutdown: it takes its
// backends down with it. We chose this over a watchdog process because it needs no extra process
// and cannot itself be left behind. Caveat: the signal fires when the *thread* that forked the
// postmaster exits, so construct TempPostgres on a thread that outlives it (the test's main
// thread, as GoogleTest does). A directory left by a crashed run (its owner process and its
// postmaster both gone) is removed by the next TempPostgres.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "subprocess.hpp"

namespace pgwire::test {

// What pg_hba.conf demands of TCP connections (127.0.0.1/32 and ::1/128). Unix-socket connections
// are always `trust`: the harness uses them for its own setup.
// cert: a client certificate signed by TempPostgresTls::ca_file whose CN is the role's name
// (clientcert=verify-full), on TLS connections only; needs TempPostgresOptions::tls with a ca_file.
enum class HostAuth { trust, scram_sha_256, md5, cert };

const char* host_auth_name(HostAuth auth);

// The server's TLS files (PEM), e.g. from TestPki (test_pki.hpp). TempPostgres copies them into
// its directory, owned by the server's user with the key at mode 0600 as PostgreSQL demands, so
// they may live anywhere the test process can read.
struct TempPostgresTls {
  std::string cert_file;  // ssl_cert_file
  std::string key_file;   // ssl_key_file
  // ssl_ca_file: the CA that signs client certificates. Empty: no client certificates are
  // asked for (HostAuth::cert then cannot work).
  std::string ca_file;
};

struct TempPostgresOptions {
  HostAuth host_auth = HostAuth::trust;
  // With scram_sha_256 or md5: the login role that is created with this password (and may create
  // objects in schema public). The superuser `postgres` gets the same password. With cert: the
  // role is created without a password; the client certificate's CN must be this name
  // (TestPki's client() is made for "pgwire"). With trust, the login user is `postgres` and these
  // are ignored.
  // password_encryption follows host_auth (md5 needs md5-hashed passwords: with a SCRAM hash the
  // server silently performs SCRAM on an md5 pg_hba line).
  std::string user = "pgwire";
  std::string password = "pgwire-secret";
  // Extra server settings (name, value), passed as `-c name=value` after ours, so they win.
  // Example: {"log_statement", "all"}. Note: log_destination=csvlog needs logging_collector=on;
  // its files then land in data_dir()/log (log_directory), not in log_path().
  std::vector<std::pair<std::string, std::string>> settings;
  // Set: the server starts with ssl=on and these files (before `settings`, which may override
  // them), and pg_hba.conf is written by TempPostgres: `hostssl` lines for host_auth (`host` lines
  // unless hostssl_only, except for cert, which only exists on hostssl lines).
  // Unset (the default): no TLS, pg_hba.conf as initdb writes it.
  std::optional<TempPostgresTls> tls;
  // With tls: TCP connections without TLS are rejected (`hostnossl ... reject`), whatever
  // sslmode the client asks for.
  bool hostssl_only = false;
  std::chrono::milliseconds start_timeout{std::chrono::seconds(60)};
  // Empty: $PGWIRE_PG_BINDIR if set, otherwise the newest /usr/lib/postgresql/*/bin.
  std::string bindir;
};

class TempPostgres {
 public:
  TempPostgres() : TempPostgres(TempPostgresOptions{}) {}
  explicit TempPostgres(TempPostgresOptions options);
  ~TempPostgres();
  TempPostgres(const TempPostgres&) = delete;
  TempPostgres& operator=(const TempPostgres&) = delete;

  uint16_t port() const { return port_; }
  const std::string& host() const { return host_; }  // "127.0.0.1"
  const std::string& base_dir() const { return base_dir_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& socket_dir() const { return base_dir_; }
  const std::string& log_path() const { return log_path_; }  // the server's stderr
  const std::string& bindir() const { return bindir_; }
  pid_t pid() const { return pid_; }
  HostAuth host_auth() const { return options_.host_auth; }
  // The server's copies of TempPostgresOptions::tls (in base_dir()/tls), nullopt without TLS.
  const std::optional<TempPostgresTls>& tls() const { return tls_; }
  // The role to log in as over TCP, and its password (empty with trust and cert).
  const std::string& user() const { return user_; }
  std::string password() const;
  static const char* superuser() { return "postgres"; }
  // `postgres --version`, e.g. "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)".
  const std::string& version() const { return version_; }

  std::string read_log() const;
  // The last `lines` lines of the log, for error messages.
  std::string log_tail(size_t lines = 30) const;

  // PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD (if any), PGCONNECT_TIMEOUT for a client
  // connecting directly over TCP.
  std::map<std::string, std::string> client_env() const;

  // psql -X -h 127.0.0.1 -p port <args>, as user() on database postgres (PGUSER/PGDATABASE, so
  // args may override them with -U/-d), with PGPASSWORD set to password() unless `env` sets it.
  CommandResult run_psql(const std::vector<std::string>& args, const std::string& stdin_data = {},
                         const std::map<std::string, std::string>& env = {}) const;

  // The same, over the Unix socket as superuser (always trust): for test setup.
  CommandResult run_admin_psql(const std::vector<std::string>& args, const std::string& stdin_data = {}) const;

  // Stops the server now (immediate shutdown) and removes the directory. Idempotent.
  void stop();

 private:
  void init_cluster();
  void start_server();
  bool try_start_on(uint16_t port, std::string& failure);
  void wait_until_ready();
  void install_tls_files();
  void write_hba_conf() const;
  void create_login_role();
  std::string tool(const char* name) const;

  TempPostgresOptions options_;
  std::string host_ = "127.0.0.1";
  std::string bindir_;
  std::string base_dir_;
  std::string data_dir_;
  std::string log_path_;
  std::string version_;
  std::string user_;
  std::optional<RunAs> run_as_;  // set when we are root
  std::optional<TempPostgresTls> tls_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// The directory holding initdb/postgres/pg_ctl/psql, chosen as described in TempPostgresOptions.
std::string find_postgres_bindir();

// A port that was free a moment ago (bind 127.0.0.1:0, read it back, close).
uint16_t pick_free_port();

}  // namespace pgwire::test
