-- plush.launch: the command lines, scripts and files the launchers make
-- (nothing is started here; tests/e2e/mpi.sh, netns.sh and slurm.sh run
-- them for real).
require("fake_core").install()
local launch = require "plush.launch"

describe("launch", function()
  it("kind: one launcher, --mpi going with --hosts or --slurm", function()
    assert.is_nil(launch.kind{})
    assert.equal("mpi", launch.kind{mpi = true})
    assert.equal("hosts", launch.kind{hosts = "h"})
    assert.equal("mpi", launch.kind{mpi = true, hosts = "h"})
    assert.equal("slurm", launch.kind{slurm = true, mpi = true})
    assert.has_error(function() launch.kind{slurm = true, hosts = "h"} end,
      "--slurm and --hosts do not go together: Slurm picks the hosts")
  end)

  describe("parse_hosts", function()
    it("reads HOST [COUNT] lines, comments and blank lines", function()
      local list, total = launch.parse_hosts(
        "# the cluster\nnode1 4\n\n  node2   # one\nuser@node3 2\n")
      assert.same({{host = "node1", n = 4}, {host = "node2", n = 1},
        {host = "user@node3", n = 2}}, list)
      assert.equal(7, total)
    end)

    it("says which line is wrong", function()
      assert.has_error(function() launch.parse_hosts("a 2\nb x\n", "hosts.txt") end,
        "hosts.txt:2: bad engine count 'x'")
      assert.has_error(function() launch.parse_hosts("a 0", "h") end, "h:1: bad engine count '0'")
      assert.has_error(function() launch.parse_hosts("a 1 2", "h") end,
        "h:1: want 'HOST [COUNT]', got 'a 1 2'")
      assert.has_error(function() launch.parse_hosts("a;rm 1", "h") end,
        "h:1: bad host name 'a;rm'")
      assert.has_error(function() launch.parse_hosts("# nothing\n", "h") end, "h: no hosts")
    end)
  end)

  describe("mpi_argv", function()
    local base = {n = 4, engine = "/opt/plush/bin/plush-engine-mpi", file = "/run/p/x.json"}
    it("mpiexec -n N ENGINE --file F", function()
      assert.same({"mpiexec", "-n", "4", "/opt/plush/bin/plush-engine-mpi",
        "--file", "/run/p/x.json"}, launch.mpi_argv(base))
    end)

    it("Open MPI: --oversubscribe always, --allow-run-as-root as root", function()
      local o = setmetatable({openmpi = true, root = true}, {__index = base})
      assert.same({"mpiexec", "--allow-run-as-root", "--oversubscribe", "-n", "4",
        "/opt/plush/bin/plush-engine-mpi", "--file", "/run/p/x.json"}, launch.mpi_argv(o))
      o.root = false
      assert.same("--oversubscribe", launch.mpi_argv(o)[2])
    end)

    it("more engine arguments after the engine's", function()
      local o = setmetatable({args = {"--memory-limit", "1G"}}, {__index = base})
      local argv = launch.mpi_argv(o)
      assert.same({"--file", "/run/p/x.json", "--memory-limit", "1G"}, {table.unpack(argv, 5)})
    end)

    it("a custom mpiexec with arguments, and hosts", function()
      local o = setmetatable({mpiexec = "mpirun --mca btl self,vader",
        hosts = {{host = "a", n = 2}, {host = "b", n = 1}}}, {__index = base})
      assert.same({"mpirun", "--mca", "btl", "self,vader", "--host", "a:2,b:1", "-n", "4",
        "/opt/plush/bin/plush-engine-mpi", "--file", "/run/p/x.json"}, launch.mpi_argv(o))
    end)
  end)

  describe("ssh", function()
    local saved
    before_each(function() saved = os.getenv("PLUSH_SSH") end)
    it("defaults to ssh that never prompts", function()
      if saved then return end -- the environment decides
      assert.equal("ssh -o BatchMode=yes -o ConnectTimeout=10", launch.ssh())
    end)

    -- A stand-in for ssh that runs the remote command here, as the
    -- host's shell would: `PREFIX HOST CMD` -> eval CMD.
    local here = [[sh -c 'eval "$2"' -]]

    it("copies the connection file with mode 0600, through a temporary", function()
      local home = os.tmpname()
      os.remove(home)
      assert(os.execute("mkdir -p " .. home))
      local src = home .. "/src.json"
      local f = assert(io.open(src, "w"))
      f:write('{"key":"secret"}')
      f:close()
      local cmd = launch.copy_command(here, "node1", "my-work")
      assert.matches("install %-m 600 /dev/stdin", cmd)
      assert.truthy(os.execute("HOME=" .. home .. " " .. cmd .. " <" .. src))
      local copy = home .. "/.plush/my-work.json"
      f = assert(io.open(copy))
      assert.equal('{"key":"secret"}', f:read("a"))
      f:close()
      local st = io.popen("stat -c %a " .. copy .. " " .. home .. "/.plush"):read("a")
      assert.equal("600\n700\n", st)
      local rm = launch.remove_command(here, "node1", "my-work")
      assert.truthy(os.execute("HOME=" .. home .. " " .. rm))
      assert.is_nil(io.open(copy))
      os.execute("rm -rf " .. home)
    end)

    it("runs each engine in the foreground of its ssh", function()
      local argv = launch.engine_command(here, "node1", "/bin/echo", "it's")
      assert.equal("/bin/sh", argv[1])
      assert.equal("-c", argv[2])
      assert.matches("^exec sh %-c", argv[3])
      local f = io.popen("HOME=/h " .. argv[1] .. " -c " .. require("plush.util").shquote(argv[3]))
      assert.equal("--file /h/.plush/it's.json", f:read("l"))
      f:close()
    end)
  end)

  describe("slurm_script", function()
    it("#SBATCH lines and one srun step", function()
      local s = launch.slurm_script{profile = "work", n = 8, engine = "/opt/bin/plush-engine",
        file = "/home/u/.plush/work.json", log = "/run/plush/work.slurm.log",
        partition = "short", time = "01:00:00", account = "proj"}
      assert.equal(table.concat({
        "#!/bin/sh",
        "# plush engines for cluster 'work' (written by plush cluster start --slurm)",
        "#SBATCH --job-name=plush-work",
        "#SBATCH --ntasks=8",
        "#SBATCH --output=/run/plush/work.slurm.log",
        "#SBATCH --partition=short",
        "#SBATCH --time=01:00:00",
        "#SBATCH --account=proj",
        "exec srun --kill-on-bad-exit=0 '/opt/bin/plush-engine' --file '/home/u/.plush/work.json'",
        ""}, "\n"), s)
    end)

    it("MPI engines through srun's PMIx", function()
      local s = launch.slurm_script{profile = "p", n = 2, engine = "e", file = "f", log = "l",
        mpi = true}
      assert.matches("\nexec srun %-%-kill%-on%-bad%-exit=0 %-%-mpi=pmix 'e' %-%-file 'f'\n$", s)
      assert.not_matches("partition", s)
    end)

    it("more engine arguments on the srun line", function()
      local s = launch.slurm_script{profile = "p", n = 2, engine = "e", file = "f", log = "l",
        args = {"--memory-limit", "512M"}}
      assert.matches("\nexec srun %-%-kill%-on%-bad%-exit=0 'e' %-%-file 'f' "
        .. "'%-%-memory%-limit' '512M'\n$", s)
    end)

    it("job ids from sbatch", function()
      assert.equal("42", launch.job_id("Submitted batch job 42\n"))
      assert.equal("7", launch.job_id("7;cluster\n"))
      assert.is_nil(launch.job_id("sbatch: error: invalid partition"))
    end)
  end)

  it("sidecar: PROFILE.launch.json beside the connection file", function()
    assert.equal("/run/plush/work.launch.json", launch.sidecar("/run/plush", "work"))
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    assert.is_nil(launch.read(dir, "none"))
    local f = assert(io.open(launch.sidecar(dir, "p"), "w"))
    f:write('{"kind":"mpi","pids":[123]}')
    f:close()
    local st = launch.read(dir, "p")
    assert.equal("mpi", st.kind)
    assert.equal("integer", math.type(st.pids[1]))
    os.remove(launch.sidecar(dir, "p"))
    os.remove(dir)
  end)
end)
