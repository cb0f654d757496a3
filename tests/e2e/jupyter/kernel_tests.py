"""The Jupyter project's own kernel test harness (jupyter_kernel_test) on
the `plush` kernelspec: kernel_info, execute (stdout, stderr, results,
errors), completion, inspection, is_complete and history."""
import unittest

import jupyter_kernel_test


class PlushKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "plush"
    language_name = "lua"
    file_extension = ".lua"

    code_hello_world = "print('hello, world')"
    code_stderr = "io.stderr:write('to stderr\\n')"
    code_generate_error = "error('boom')"
    code_execute_result = [
        {"code": "1 + 2", "result": "3"},
        {"code": "('a'):rep(3)", "result": "aaa"},
        {"code": "local x = 6\nx * 7", "result": "42"},
        {"code": "{1, 2, k = 'v'}", "result": '{1, 2, k = "v"}'},
        {"code": "{{a = 1}, {a = 2}}", "mime": "text/html"},
    ]
    completion_samples = [
        {"text": "pri", "matches": {"print"}},
        {"text": "string.up", "matches": {"string.upper"}},
        {"text": "%auto", "matches": {"%autopx"}},
        {"text": "x = tab", "matches": {"table"}},
    ]
    complete_code_samples = ["x = 1", "print(1)", "%px x = 1", "for i = 1, 2 do end", "?print"]
    incomplete_code_samples = ["for i = 1, 2 do", "function f()", "%px if x then", "t = {"]
    invalid_code_samples = ["x = = 1", "end", "1 +* 2"]
    code_inspect_sample = "string.format"
    supported_history_operations = ("tail", "range", "search")
    code_history_pattern = "1 + 2"
    # the progress bar of a farm on the embedded cluster (started on first use)
    code_display_data = [{"code": "d = rc:balanced():with{block = false}"
                                  ":apply(function() return 1 end)\nd:wait_interactive()",
                          "mime": "text/plain"}]

    # What the harness leaves out, checked exactly.

    def run_cell(self, code):
        self.flush_channels()
        return self.execute_helper(code)

    def test_plush_error_fields(self):
        reply, out = self.run_cell("local t = {}\nt.x.y = 1")
        self.assertEqual(reply["content"]["status"], "error")
        self.assertEqual(reply["content"]["ename"], "LuaError")
        self.assertEqual(reply["content"]["evalue"],
                         "In[%d]:2: attempt to index a nil value (field 'x')"
                         % reply["content"]["execution_count"])
        self.assertEqual(out[0]["content"]["traceback"][1], "stack traceback:")

    def test_plush_syntax_error(self):
        reply, out = self.run_cell("x = = 1")
        self.assertEqual(reply["content"]["ename"], "SyntaxError")
        self.assertEqual([m["msg_type"] for m in out], ["error"])

    def test_plush_stdout_exact(self):
        reply, out = self.run_cell("for i = 1, 3 do print(i) end\nio.write('a', 1, 2.5, '\\n')")
        text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream")
        self.assertEqual(text, "1\n2\n3\na12.5\n")

    def test_plush_magic_lines_in_a_cell(self):
        reply, out = self.run_cell("x1 = 3\n%magic\nx1 * 2")
        self.assertEqual(reply["content"]["status"], "ok")
        text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream")
        self.assertTrue(text.startswith("built-in magics:\n"), text)
        results = [m for m in out if m["msg_type"] == "execute_result"]
        self.assertEqual(results[0]["content"]["data"]["text/plain"], "6")

    def test_plush_system_command(self):
        reply, out = self.run_cell("!echo out; echo err >&2; exit 3")
        text = "".join(m["content"]["text"] for m in out if m["msg_type"] == "stream")
        self.assertEqual(text, "out\nerr\nexit 3\n")

    def test_plush_io_read_asks_the_notebook(self):
        self.flush_channels()
        msg_id = self.kc.execute("local a, b = io.read('l', 'n')\nprint('got', a, b + 1)",
                                 allow_stdin=True)
        for typed in ("some text", "41"):
            req = self.kc.get_stdin_msg(timeout=15)
            self.assertEqual(req["msg_type"], "input_request")
            self.assertEqual(req["parent_header"]["msg_id"], msg_id)
            self.kc.input(typed)
        reply = self.get_non_kernel_info_reply(timeout=15)
        self.assertEqual(reply["content"]["status"], "ok")
        text = ""
        while True:
            msg = self.kc.get_iopub_msg(timeout=15)
            if msg["msg_type"] == "stream":
                text += msg["content"]["text"]
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        self.assertEqual(text, "got\tsome text\t42\n")

    def test_plush_io_read_without_stdin(self):
        self.flush_channels()
        self.kc.execute("io.read()", allow_stdin=False)
        reply = self.get_non_kernel_info_reply(timeout=15)
        self.assertEqual(reply["content"]["evalue"],
                         "io.read: no input here: the notebook's client does not allow stdin")

    def test_plush_invalid_utf8(self):
        reply, out = self.run_cell("print('a\\255b')")
        self.assertEqual(out[0]["content"]["text"], "a\ufffdb\n")

    def test_plush_inspect_missing(self):
        self.flush_channels()
        msg_id = self.kc.inspect("no_such_name_here")
        reply = self.get_non_kernel_info_reply(timeout=15)
        self.assertEqual(reply["content"]["status"], "ok")
        self.assertFalse(reply["content"]["found"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
