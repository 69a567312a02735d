#!/usr/bin/python3
"""Runs the integration tests with pytest and reports each test as TAP,
so that Automake counts every test and `make check` shows them."""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

here = os.path.dirname(os.path.abspath(__file__))
if os.environ.get('PORTICO_PYTEST_COLLECT_ONLY'):
    # make distcheck (scripts/check): every test of the tarball is there and
    # imports; they run in the build tree's make check and the ASan one
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '--collect-only', '-p', 'no:cacheprovider', here],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ids = [l for l in proc.stdout.splitlines() if '::' in l]
    for n, test_id in enumerate(ids, 1):
        print(f'ok {n} - collected {test_id}')
    if proc.returncode != 0 or not ids:
        print('\n'.join('# ' + l for l in proc.stdout.splitlines()[-40:]))
        print(f'not ok {len(ids) + 1} - pytest --collect-only exited with status {proc.returncode}')
        ids.append('')
    print(f'1..{len(ids)}')
    sys.exit(0)
with tempfile.TemporaryDirectory() as tmp:
    xml = os.path.join(tmp, 'junit.xml')
    args = [sys.executable, '-m', 'pytest', '-q', '-rfEs', '-p', 'no:cacheprovider', f'--junitxml={xml}', here]
    args += sys.argv[1:]
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout.splitlines():
        print('# ' + line)
    n = 0
    if os.path.exists(xml):
        for case in ET.parse(xml).getroot().iter('testcase'):
            n += 1
            name = f"{case.get('classname', '')}.{case.get('name')}".replace('#', '')
            if case.find('skipped') is not None:
                reason = (case.find('skipped').get('message') or '').replace('\n', ' ')
                print(f'ok {n} - {name} # SKIP {reason}')
            elif case.find('failure') is not None or case.find('error') is not None:
                print(f'not ok {n} - {name}')
            else:
                print(f'ok {n} - {name}')
    if proc.returncode not in (0, 5) or n == 0:
        n += 1
        print(f'not ok {n} - pytest exited with status {proc.returncode}')
    print(f'1..{n}')
