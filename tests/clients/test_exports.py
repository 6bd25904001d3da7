#!/usr/bin/python3
"""The client libraries export their documented API and nothing else: `nm -D --defined-only` of
each built .so against a list written by hand from include/sscard/client.h (+ the three functions
of include/sscard/error.h) and include/sscard/SSCardDriver.h. Also their sonames.

Run standalone: SSC_BUILD_DIR=build /usr/bin/python3 tests/clients/test_exports.py
"""

import os
import subprocess
import unittest

BUILD_DIR = os.environ.get('SSC_BUILD_DIR', 'build')

LIBSSCARD = '''
sscard_connect sscard_close sscard_set_timeout
sscard_call sscard_call_json sscard_send sscard_wait sscard_forget
sscard_subscribe sscard_next_event sscard_event_fd
sscard_read_basic sscard_read_items sscard_write_items sscard_internal_auth
sscard_verify_pin sscard_change_pin sscard_reload_pin sscard_unblock_pin
sscard_readers sscard_error_value
sscard_claim_verify_holder sscard_medical_credentials sscard_medical_settle_offline
sscard_medical_pending sscard_medical_acknowledge sscard_medical_clear_flag
sscard_hsm_step1 sscard_hsm_step2
ssc_strerror_name ssc_strerror ssc_std_code
'''.split()

LIBSSCARDDRIVER = '''
iReadCardBas iReadCard iWriteCard iVerifyPIN iChangePIN iReloadPIN iUnblockPIN
iGetReaderInfo iReadCardBas_HSM_Step1 iReadCardBas_HSM_Step2
'''.split()


def exported(path):
    """The names of the defined dynamic symbols of path, without version suffixes and without
    the version-node symbol itself."""
    out = subprocess.run(['nm', '-D', '--defined-only', path], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] == 'A':
            continue
        names.add(parts[2].split('@')[0])
    return names


def soname(path):
    out = subprocess.run(['readelf', '-d', path], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        if '(SONAME)' in line:
            return line.split('[', 1)[1].rstrip(']')
    return None


class Exports(unittest.TestCase):
    def check(self, name, want, want_soname):
        path = os.path.join(BUILD_DIR, 'lib', name)
        self.assertTrue(os.path.exists(path), f'{path} was not built')
        self.assertEqual(sorted(exported(path)), sorted(want))
        self.assertEqual(soname(path), want_soname)

    def test_libsscard(self):
        self.check('libsscard.so', LIBSSCARD, 'libsscard.so.0')

    def test_libsscarddriver(self):
        self.check('libSSCardDriver.so', LIBSSCARDDRIVER, 'libSSCardDriver.so.0')


if __name__ == '__main__':
    unittest.main()
