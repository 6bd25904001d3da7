#!/usr/bin/python3
"""Unit tests of the sscard Python package (python/sscard) against a scripted server on a Unix
socket: error answers into SscardError (name, code, std_code, sw, retries_left, reader; -32601 and
a name newer than the package), replies matched by id out of order (send/wait), events queued
beside replies and taken as an iterator, the deadline of a call to a server that never answers,
garbage, a daemon that is not there ($SSCARD_SOCKET), and that the package imports nothing
outside the standard library. Expected values written by hand from docs/api.md.

Run standalone: /usr/bin/python3 tests/clients/test_python.py
"""

import json
import os
import socket
import sys
import tempfile
import threading
import time
import unittest

SOURCE_DIR = os.environ.get('SSC_SOURCE_DIR') or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SOURCE_DIR, 'python'))
import sscard  # noqa: E402


class Server:
    """Accepts one connection, reads `requests` lines (kept in self.lines), writes the script,
    then keeps the connection open for linger seconds."""

    def __init__(self, script, requests=1, linger=1.5):
        self.dir = tempfile.mkdtemp(prefix='sscard-py-')
        self.path = os.path.join(self.dir, 's.sock')
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(self.path)
        self.lsock.listen(4)
        self.script, self.requests, self.linger = script, requests, linger
        self.lines = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        s, _ = self.lsock.accept()
        buf = b''
        while len(self.lines) < self.requests:
            data = s.recv(4096)
            if not data:
                break
            buf += data
            while b'\n' in buf:
                line, buf = buf.split(b'\n', 1)
                self.lines.append(json.loads(line))
        for text in self.script:
            s.sendall(text.encode())
        time.sleep(self.linger)
        s.close()

    def close(self):
        self.t.join(5)
        self.lsock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


class Package(unittest.TestCase):
    def test_error_answer(self):
        srv = Server(['{"jsonrpc":"2.0","id":1,"error":{"code":1019,"message":"wrong PIN",'
                      '"data":{"name":"SSC_EPINWRONG","std_code":-51,"sw":"63C2",'
                      '"retries_left":2,"reader":"pcsc-a"}}}\n'])
        try:
            with sscard.connect(srv.path) as c:
                with self.assertRaises(sscard.SscardError) as cm:
                    c.verify_pin('000000')
            e = cm.exception
            self.assertEqual((e.name, e.code, e.std_code, e.sw, e.retries_left, e.reader,
                              e.message),
                             ('SSC_EPINWRONG', 1019, -51, '63C2', 2, 'pcsc-a', 'wrong PIN'))
            self.assertEqual(srv.lines, [{'jsonrpc': '2.0', 'id': 1, 'method': 'card.verify_pin',
                                          'params': {'pin': '000000'}}])
        finally:
            srv.close()

    def test_pipelined_and_kinds(self):
        srv = Server(['{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"method not '
                      'found"}}\n',
                      '{"jsonrpc":"2.0","id":2,"error":{"code":1050,"message":"new",'
                      '"data":{"name":"SSC_EFUTURE","std_code":-23}}}\n',
                      '{"jsonrpc":"2.0","id":1,"result":{"readers":[]}}\r\n'], requests=3)
        try:
            with sscard.connect(srv.path) as c:
                ids = [c.send('reader.list'), c.send('x.y', {'a': 1}), c.send('x.z')]
                self.assertEqual(ids, [1, 2, 3])
                self.assertEqual(c.wait(1), {'readers': []})
                with self.assertRaises(sscard.SscardError) as cm:
                    c.wait(2)
                self.assertEqual((cm.exception.name, cm.exception.code, cm.exception.std_code),
                                 ('SSC_EFUTURE', 1050, -23))
                with self.assertRaises(sscard.SscardError) as cm:
                    c.wait(3)
                self.assertEqual((cm.exception.name, cm.exception.code),
                                 ('SSC_ENOTFOUND', -32601))
                with self.assertRaises(sscard.SscardError) as cm:
                    c.wait(3)
                self.assertEqual(cm.exception.name, 'SSC_ENOTFOUND')   # already collected
        finally:
            srv.close()

    def test_events(self):
        srv = Server(['{"jsonrpc":"2.0","method":"event","params":{"type":"card.removed",'
                      '"reader":"r"}}\n',
                      '{"jsonrpc":"2.0","id":1,"result":{"subscribed":true}}\n',
                      '{"jsonrpc":"2.0","method":"event","params":{"type":"card.inserted",'
                      '"reader":"r"}}\n'])
        try:
            with sscard.connect(srv.path) as c:
                self.assertTrue(c.subscribe())
                got = list(c.events(timeout=0.5))
                self.assertEqual(got, [{'type': 'card.removed', 'reader': 'r'},
                                       {'type': 'card.inserted', 'reader': 'r'}])
                self.assertIsNone(c.next_event(0))
        finally:
            srv.close()

    def test_deadline(self):
        srv = Server([], linger=2.0)
        try:
            with sscard.connect(srv.path) as c:
                t0 = time.monotonic()
                with self.assertRaises(sscard.SscardError) as cm:
                    c.call('system.info', timeout=0.3)
                took = time.monotonic() - t0
            self.assertEqual((cm.exception.name, cm.exception.code), ('SSC_ETIMEDOUT', 0))
            self.assertGreaterEqual(took, 0.3)
            self.assertLess(took, 2.0)
        finally:
            srv.close()

    def test_garbage_and_no_daemon(self):
        srv = Server(['not json\n'])
        try:
            with sscard.connect(srv.path) as c:
                with self.assertRaises(sscard.SscardError) as cm:
                    c.info()
                self.assertEqual(cm.exception.name, 'SSC_EPROTO')
                with self.assertRaises(sscard.SscardError) as cm:
                    c.info()
                self.assertEqual(cm.exception.name, 'SSC_EPROTO')   # the connection is broken
        finally:
            srv.close()
        os.environ['SSCARD_SOCKET'] = '/nonexistent/sscard-test.sock'
        try:
            t0 = time.monotonic()
            with self.assertRaises(sscard.SscardError) as cm:
                sscard.connect()
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            del os.environ['SSCARD_SOCKET']
        self.assertEqual((cm.exception.name, cm.exception.code), ('SSC_EIO', 0))
        self.assertIn('/nonexistent/sscard-test.sock', cm.exception.message)
        self.assertIn('is sscardd running?', cm.exception.message)

    def test_standard_library_only(self):
        import ast
        path = os.path.join(SOURCE_DIR, 'python', 'sscard', '__init__.py')
        with open(path) as f:
            tree = ast.parse(f.read())
        mods = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods.update(a.name.split('.')[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                mods.add(node.module.split('.')[0])
        self.assertTrue(mods <= set(sys.stdlib_module_names), mods - set(sys.stdlib_module_names))


if __name__ == '__main__':
    unittest.main()
