"""Commands run from a CNI plugin: input in, exit code and both outputs out, no deadlock."""
from testbed.cni import spawn


def test_output_error_and_exit_code_come_back_apart():
    done = spawn.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")


def test_input_larger_than_a_pipe_goes_through_while_output_flows_back():
    text = "x" * 300_000 + "\n"
    done = spawn.run(["cat"], text)
    assert done.returncode == 0 and done.stdout == text


def test_the_environment_is_the_given_one_and_a_missing_command_is_127():
    assert spawn.run(["sh", "-c", "echo $CNI_COMMAND"], env={"CNI_COMMAND": "ADD",
                                                              "PATH": "/usr/bin:/bin"}).stdout \
        == "ADD\n"
    missing = spawn.run(["no-such-command-here"])
    assert missing.returncode == 127 and "no-such-command-here" in missing.stderr


def test_a_child_that_stops_reading_ends_the_feed_without_an_error():
    done = spawn.run(["head", "-c", "10"], "y" * 200_000)
    assert done.returncode == 0 and done.stdout == "y" * 10
