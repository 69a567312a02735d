"""REST/JSON to gRPC transcoding (issue 18) through the real binary to a
Python gRPC server of tests/integ/protos/library.proto, whose descriptor
set protoc makes: every HttpRule form, every JSON type and well-known type
both ways, the status mapping with details, server streaming, bad input
that never reaches the upstream, load errors and a reload."""
import http.client
import json
import os
import socket
import subprocess
import time

import pytest

pytest.importorskip('grpc')
pytest.importorskip('google.protobuf')
if subprocess.run(['which', 'protoc'], capture_output=True).returncode:
    pytest.skip('protoc (protobuf-compiler) is not installed', allow_module_level=True)

from conftest import SANITIZER_MARKS, Portico, free_port, run_portico, wait_for  # noqa: E402
from library_server import PROTOS, LibraryServer, compile_protos  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope='module')
def protos(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('protos'))
    return d, compile_protos(d)


@pytest.fixture
def server(protos):
    s = LibraryServer(protos[0])
    yield s
    s.stop()


def config(port, target, descriptor, options='', alog='/dev/null', max_body='0', scheme='grpc', extra_route=''):
    return f'''listeners: [{{ name: main, address: 127.0.0.1:{port}, http2: true }}]
access_log: {{ path: {alog}, format: json, buffer: 0 }}
upstreams: [{{ name: g, scheme: {scheme}, targets: ["127.0.0.1:{target}"], timeouts: {{ read: 5s }} }}]
routes:
  - name: rest
    match: {{ paths: ["/v1/*", "/library.v1.Library/*"] }}
    upstream: g
    max_body_size: {max_body}
    filters:
      grpc-transcode: {{ descriptor: {descriptor}, services: [library.v1.Library] {options} }}
{extra_route}
'''


@pytest.fixture(scope='module')
def shared(protos, tmp_path_factory):
    """One server and one gateway for the tests of bad input, which leave
    nothing behind (each checks that its request reached nobody): starting
    one per case was most of this file's time under ASan."""
    s = LibraryServer(protos[0])
    d = str(tmp_path_factory.mktemp('shared'))
    os.chmod(d, 0o755)
    port = free_port()
    g = Portico(d, config(port, s.port, protos[1]), workers=1).start()
    yield port, s
    g.kill_all()
    s.stop()
    text = g.log()
    assert not any(m in text for m in SANITIZER_MARKS), 'sanitizer report:\n' + text


@pytest.fixture
def gw(gateway, server, protos, tmp_path):
    """A gateway in front of the server: (port, server, access-log path)."""
    port = free_port()
    alog = tmp_path / 'access.log'
    gateway(config(port, server.port, protos[1], alog=alog), workers=1)
    return port, server, alog


def call(port, method, path, body=None, headers=None, h2=False):
    """status, headers (lower-case), body bytes; over HTTP/1.1 (http.client)
    or HTTP/2 (curl --http2-prior-knowledge)."""
    if h2:
        args = ['curl', '-s', '--http2-prior-knowledge', '-X', method, '-D', '-', f'http://127.0.0.1:{port}{path}']
        for k, v in (headers or {}).items():
            args += ['-H', f'{k}: {v}']
        if body is not None:
            args += ['--data-binary', '@-']
        r = subprocess.run(args, input=body.encode() if isinstance(body, str) else body, capture_output=True,
                           timeout=20)
        head, _, out = r.stdout.partition(b'\r\n\r\n')
        lines = head.decode().split('\r\n')
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, v in (ln.split(':', 1) for ln in lines[1:] if ':' in ln)}
        return status, hdrs, out
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=20)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    c.close()
    return out


def jcall(port, method, path, body=None, h2=False, status=200, **kw):
    st, hdrs, out = call(port, method, path, body=json.dumps(body) if isinstance(body, (dict, list)) else body,
                         h2=h2, **kw)
    assert st == status, (st, out)
    assert hdrs['content-type'] == 'application/json', hdrs
    return json.loads(out), hdrs


def last_log(alog):
    """The access log's line of the last request (written as it ends, an
    instant after the client has its answer)."""
    wait_for(lambda: os.path.exists(alog) and open(alog).read().endswith('\n'), 5, what='an access-log line')
    return json.loads(open(alog).read().splitlines()[-1])


# ---- HttpRule forms ----

@pytest.mark.parametrize('h2', [False, True], ids=['h1', 'h2'])
def test_get_with_a_multi_segment_variable(gw, h2):
    port, server, alog = gw
    got, hdrs = jcall(port, 'GET', '/v1/shelves/s%201/books/b2', h2=h2)
    assert got == {'name': 'shelves/s 1/books/b2', 'title': 'Title of shelves/s 1/books/b2', 'genre': 'FICTION',
                   'pageCount': '1099511627777', 'tags': ['a', 'b'], 'published': '2023-11-14T22:13:20.005Z'}
    name, req, md = server.last('GetBook')
    assert req.name == 'shelves/s 1/books/b2'
    assert md.get('content-type', 'application/grpc') .startswith('application/grpc')
    # the upstream's metadata and trailers become headers
    assert hdrs['x-meta'] == 'head' and hdrs['x-trailer'] == 'tail' and hdrs['grpc-status'] == '0', hdrs
    log = last_log(alog)
    assert log['status'] == 200 and log['target'] == '/v1/shelves/s%201/books/b2', log


def test_query_parameters_fill_nested_repeated_and_enum_fields(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'GET', '/v1/shelves/s1/books?pageSize=5&tags=x&tags=y+z&filter.author=me%26you'
                                '&filter.years.from=1990&genre=POETRY')
    assert got == {'shelf': 's1', 'pageSize': 5, 'tags': ['x', 'y z'], 'genre': 'POETRY',
                   'filter': {'author': 'me&you', 'years': {'from': 1990}}}, got
    _, req, _ = server.last('ListBooks')
    assert (req.shelf, req.page_size, list(req.tags), req.filter.author, req.filter.years.to) == \
        ('s1', 5, ['x', 'y z'], 'me&you', 0)
    # proto names work as well as JSON names
    got, _ = jcall(port, 'GET', '/v1/shelves/s1/books?page_size=7')
    assert got['pageSize'] == 7


def test_additional_bindings(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'GET', '/v1/books?shelf=via-query')
    assert got == {'shelf': 'via-query'}
    assert server.last('ListBooks')[1].shelf == 'via-query'


def test_post_with_a_body_field(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'POST', '/v1/shelves/s9/books?requestId=r1',
                   {'title': 'T', 'genre': 'POETRY', 'pageCount': '12', 'published': '2020-01-02T03:04:05.123+01:00'})
    assert got == {'name': 'shelves/s9/books/r1', 'title': 'T', 'genre': 'POETRY', 'pageCount': '12',
                   'published': '2020-01-02T02:04:05.123Z'}, got
    _, req, _ = server.last('CreateBook')
    assert req.shelf == 's9' and req.request_id == 'r1' and req.book.page_count == 12


def test_patch_with_a_nested_variable_and_a_field_mask(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'PATCH', '/v1/shelves/a/books/b?updateMask=title,pageCount', {'title': 'New'})
    assert got == {'name': 'shelves/a/books/b', 'title': 'New', 'tags': ['title', 'page_count']}, got
    _, req, _ = server.last('UpdateBook')
    assert req.book.name == 'shelves/a/books/b' and list(req.update_mask.paths) == ['title', 'page_count']


def test_delete_answers_empty(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'DELETE', '/v1/shelves/a/books/b')
    assert got == {}
    assert server.last('DeleteBook')[1].name == 'shelves/a/books/b'


def test_put_with_the_whole_body_and_a_variable_that_wins(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'PUT', '/v1/books/from-path', {'name': 'from-body', 'title': 'x'})
    assert got == {'name': 'from-path', 'title': 'x'}


@pytest.mark.parametrize('method', ['GET', 'SEARCH'])
def test_double_star_and_a_custom_method(gw, method):
    port, server, _ = gw
    got, _ = jcall(port, method, '/v1/files/a/b%20c/d.txt?version=3')
    assert got == {'path': 'a/b c/d.txt', 'version': '3', 'verb': 'get'}, got
    got, _ = jcall(port, method, '/v1/files')
    assert got == {'verb': 'get'}, got


def test_a_verb(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'POST', '/v1/files/f1:touch')
    assert got == {'path': 'f1', 'verb': 'touch'}
    assert server.last('FileVerb')[1].file_id == 'f1'
    # another verb is a path of GetFile's, which takes GET
    st, hdrs, _ = call(port, 'POST', '/v1/files/f1:other')
    assert st == 405 and hdrs['allow'] == 'GET, SEARCH', hdrs


def test_response_body(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'GET', '/v1/shelves/a/books/b/title')
    assert got == 'T:shelves/a/books/b'


def test_no_match_is_404_and_another_method_405(gw):
    port, server, _ = gw
    got, hdrs = jcall(port, 'GET', '/v1/nothing/here', status=404)
    assert got['code'] == 5 and 'GET /v1/nothing/here' in got['message'] and hdrs['grpc-status'] == '5'
    st, hdrs, out = call(port, 'PUT', '/v1/shelves/a/books/b')
    assert st == 405 and set(hdrs['allow'].split(', ')) == {'GET', 'PATCH', 'DELETE'}, (st, hdrs, out)
    assert json.loads(out)['code'] == 12 and hdrs['grpc-status'] == '12'
    assert not server.calls


def test_explicit_method_for_a_service_without_annotations(gateway, server, protos):
    port = free_port()
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: g, scheme: grpc, targets: ["127.0.0.1:{server.port}"] }}]
routes:
  - name: plain
    match: {{ paths: ["/plain/*"] }}
    upstream: g
    filters:
      grpc-transcode: {{ descriptor: {protos[1]}, method: library.v1.Plain/Echo }}
''', workers=1)
    got, _ = jcall(port, 'POST', '/plain/anything', {'fString': 'p', 'fInt32': 3})
    assert got == {'fString': 'p', 'fInt32': 3}
    got, _ = jcall(port, 'GET', '/plain/x?fInt64=9')
    assert got == {'fInt64': '9'}
    assert server.last('Echo')[1].f_int64 == 9


def test_a_grpc_client_on_the_route_passes(gw, protos):
    import grpc
    from library_server import modules
    pb = modules(protos[0])
    port, server, _ = gw
    with grpc.insecure_channel(f'127.0.0.1:{port}') as ch:
        fn = ch.unary_unary('/library.v1.Library/GetBook', request_serializer=pb.GetBookRequest.SerializeToString,
                            response_deserializer=pb.Book.FromString)
        b = fn(pb.GetBookRequest(name='shelves/g/books/c'), timeout=10)
    assert b.name == 'shelves/g/books/c' and b.page_count == (1 << 40) + 1


# ---- JSON, both ways ----

EVERYTHING = {
    'fDouble': 1.5, 'fFloat': 0.1, 'fInt32': -5, 'fInt64': '-9223372036854775808', 'fUint32': 4294967295,
    'fUint64': '18446744073709551615', 'fSint32': -7, 'fSint64': '-8', 'fFixed32': 9, 'fFixed64': '10',
    'fSfixed32': -11, 'fSfixed64': '-12', 'fBool': True, 'fString': 'h\u00e9llo "q" \n\u0000\U0001f600',
    'fBytes': 'AAEC/w==', 'fEnum': 'POETRY', 'fNested': {'s': 'a', 'child': {'s': 'b'}},
    'rInt32': [1, -2, 3], 'rString': ['x', ''], 'rNested': [{'s': 'n1'}, {}], 'rEnum': ['FICTION', 'POETRY'],
    'mStrInt': {'a': 1, 'b': 2}, 'mIntStr': {'-5': 'neg', '7': 'seven'}, 'mBoolMsg': {'true': {'s': 't'}},
    'oString': 'chosen', 'optInt': 0, 'wTimestamp': '1972-01-01T10:00:20.021Z', 'wDuration': '-1.000340012s',
    'wMask': 'user.displayName,photo', 'wStruct': {'k': [1, 'two', None, True, {'x': {}}]}, 'wValue': 'v',
    'wList': [1, [2]], 'wDouble': 2.5, 'wFloat': 'NaN', 'wInt64': '5', 'wUint64': '6', 'wInt32': 7, 'wUint32': 8,
    'wBool': False, 'wString': '', 'wBytes': '', 'wEmpty': {},
    'wAny': {'@type': 'type.googleapis.com/library.v1.Book', 'name': 'anybook', 'genre': 'FICTION'},
    'rDouble': [1, 'Infinity', '-Infinity'], 'rInt64': ['1', '2'], 'rTimestamp': ['2000-01-01T00:00:00Z'],
    'mValues': {'n': None, 'o': {'a': 1}},
}


@pytest.mark.parametrize('h2', [False, True], ids=['h1', 'h2'])
def test_every_type_round_trips(gw, h2):
    port, server, _ = gw
    got, _ = jcall(port, 'POST', '/v1/echo', EVERYTHING, h2=h2)
    assert got == EVERYTHING
    _, m, _ = server.last('Echo')
    # what the upstream got, read by protobuf itself
    assert (m.f_int64, m.f_uint64, m.f_sint32, m.f_sfixed64) == (-(1 << 63), (1 << 64) - 1, -7, -12)
    assert m.f_string == 'h\u00e9llo "q" \n\u0000\U0001f600' and m.f_bytes == b'\x00\x01\x02\xff'
    assert m.f_enum == 2 and list(m.r_enum) == [1, 2] and m.f_nested.child.s == 'b'
    assert dict(m.m_int_str) == {-5: 'neg', 7: 'seven'} and m.m_bool_msg[True].s == 't'
    assert m.WhichOneof('choice') == 'o_string' and m.HasField('opt_int') and m.opt_int == 0
    assert (m.w_timestamp.seconds, m.w_timestamp.nanos) == (63108020, 21000000)
    assert (m.w_duration.seconds, m.w_duration.nanos) == (-1, -340012)
    assert list(m.w_mask.paths) == ['user.display_name', 'photo']
    assert m.w_struct['k'][1] == 'two' and m.w_value.string_value == 'v'
    assert m.HasField('w_string') and m.w_string.value == '' and m.w_float.value != m.w_float.value  # NaN
    assert m.w_any.type_url == 'type.googleapis.com/library.v1.Book'
    assert m.m_values['n'].WhichOneof('kind') == 'null_value'


def test_input_forms_that_are_accepted(gw):
    """Numbers for 64-bit integers, strings for 32-bit ones, enum numbers,
    URL-safe unpadded base64, proto names, null as the default."""
    port, server, _ = gw
    got, _ = jcall(port, 'POST', '/v1/echo', {'f_int64': 12, 'fInt32': '-3', 'fEnum': 1, 'fBytes': '-_8',
                                              'fUint64': 1e3, 'fString': None, 'fDouble': '2.5', 'wInt32': None})
    assert got == {'fInt64': '12', 'fInt32': -3, 'fEnum': 'FICTION', 'fBytes': '+/8=', 'fUint64': '1000',
                   'fDouble': 2.5}, got
    got, _ = jcall(port, 'POST', '/v1/echo', '')  # no body: an empty message
    assert got == {}
    # an enum by its number in the query; an Any of an Any; an empty field mask
    got, _ = jcall(port, 'GET', '/v1/shelves/s/books?genre=2')
    assert got['genre'] == 'POETRY'
    nested = {'wAny': {'@type': 'type.googleapis.com/google.protobuf.Any',
                       'value': {'@type': 'type.googleapis.com/library.v1.Book', 'name': 'inner'}}, 'wMask': ''}
    got, _ = jcall(port, 'POST', '/v1/echo', nested)
    assert got == {'wAny': nested['wAny'], 'wMask': ''}, got


def test_output_options(gateway, server, protos):
    port = free_port()
    gateway(config(port, server.port, protos[1],
                   options=', print_enums_as_ints: true, emit_defaults: true, use_proto_names: true'), workers=1)
    got, _ = jcall(port, 'POST', '/v1/echo', {'fEnum': 'POETRY', 'fInt32': 0})
    assert got['f_enum'] == 2 and got['f_int32'] == 0 and got['f_int64'] == '0' and got['f_string'] == ''
    assert got['r_int32'] == [] and got['m_str_int'] == {} and got['f_bool'] is False and got['f_bytes'] == ''
    # presence fields are not written when unset
    assert 'f_nested' not in got and 'opt_int' not in got and 'o_string' not in got and 'w_timestamp' not in got


BAD = [
    ('{', 'not JSON'),
    ('{"fInt32": 1}x', 'not JSON'),
    ('{"fInt32": 1, "fInt32": 2}', 'duplicate'),
    ('{"nope": 1}', 'nope: no such field in library.v1.Everything'),
    ('{"fInt32": "x"}', 'fInt32: "x" is not a whole number'),
    ('{"fInt32": 2147483648}', 'fInt32: 2147483648 is out of range'),
    ('{"fInt32": 1.5}', 'fInt32: 1.5 is not a whole number'),
    ('{"fUint32": -1}', 'fUint32: -1 is out of range'),
    ('{"fUint64": "-1"}', 'fUint64: "-1" is not a whole number'),
    ('{"fInt64": "9223372036854775808"}', 'fInt64: "9223372036854775808" is not a whole number in range'),
    ('{"fFloat": 1e39}', 'fFloat: 1e+39 is out of range for a float'),
    ('{"fBool": "true"}', 'fBool: expected true or false, got a string'),
    ('{"fString": 5}', 'fString: expected a string, got a number'),
    ('{"fBytes": "***"}', 'fBytes: not base64'),
    ('{"fEnum": "EPIC"}', 'fEnum: "EPIC" is not a value of library.v1.Genre'),
    ('{"fNested": []}', 'fNested: expected an object (library.v1.Nested), got an array'),
    ('{"fNested": {"child": {"x": 1}}}', 'fNested.child.x: no such field in library.v1.Nested'),
    ('{"rInt32": 5}', 'rInt32: expected an array, got a number'),
    ('{"rInt32": [1, "b"]}', 'rInt32[1]: "b" is not a whole number'),
    ('{"rString": [null]}', 'rString[0]: an element may not be null'),
    ('{"mIntStr": {"x": "y"}}', 'mIntStr["x"]: "x" is not a whole number'),
    ('{"mBoolMsg": {"yes": {}}}', 'mBoolMsg["yes"]: map key "yes" is not true or false'),
    ('{"oString": "a", "oInt": 1}', 'oInt: a second field of the same oneof'),
    ('{"wTimestamp": "2020-13-01T00:00:00Z"}', 'wTimestamp: "2020-13-01T00:00:00Z" is not an RFC 3339 time'),
    ('{"wTimestamp": 5}', 'wTimestamp: expected a timestamp in a string, got a number'),
    ('{"wDuration": "1.5"}', 'wDuration: "1.5" is not a duration'),
    ('{"wMask": "a_b"}', 'wMask: "a_b" is not a list of lowerCamelCase paths'),
    ('{"wEmpty": {"a": 1}}', 'wEmpty: expected {} (google.protobuf.Empty), got an object'),
    ('{"wAny": {"name": "x"}}', 'wAny: an Any needs "@type"'),
    ('{"wAny": {"@type": "type.googleapis.com/no.Such"}}', 'wAny: an Any\'s type type.googleapis.com/no.Such is not'),
    ('{"wInt32": "x"}', 'wInt32: "x" is not a whole number'),
    ('[1]', 'expected an object (library.v1.Everything), got an array'),
    ('{"fNested": ' + '{"child": ' * 70 + '{}' + '}' * 71, 'nested more than 64 deep'),
    ('{"wValue": ' + '[' * 40 + ']' * 40 + '}', 'nested more than 64 deep'),
    ('{"wStruct": ' + '{"a": ' * 30 + '{}' + '}' * 31, 'nested more than 64 deep'),
    ('{"fString": "a", "f_string": "b"}', 'f_string: the field is given twice'),
    ('{"fInt32": " 5"}', 'fInt32: " 5" is not a whole number'),
    ('{"fInt64": "\\t5"}', 'fInt64: "\t5" is not a whole number'),
    ('{"wMask": "a..b"}', 'wMask: "a..b" is not a list of lowerCamelCase paths'),
]


@pytest.mark.parametrize('body,message', BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_json_is_400_naming_the_field_and_never_reaches_the_upstream(shared, body, message):
    port, server = shared
    before = len(server.calls)
    got, _ = jcall(port, 'POST', '/v1/echo', body, status=400)
    assert got['code'] == 3 and message in got['message'], got
    assert len(server.calls) == before


@pytest.mark.parametrize('method,path,body,message', [
    ('GET', '/v1/shelves/s/books?pageSize=x', None, 'query parameter pageSize: page_size: "x" is not a whole number'),
    ('GET', '/v1/shelves/s/books?nope=1', None, 'query parameter nope: no such field'),
    ('GET', '/v1/shelves/s/books?shelf=other', None, 'query parameter shelf: the field comes from the path'),
    ('GET', '/v1/shelves/s/books?filter=x', None, 'filter: expected an object'),
    ('GET', '/v1/shelves/s/books?tags=%zz', None, 'bad parameter name or escape'),
    ('POST', '/v1/echo?fInt32=1', '{}', 'query parameter fInt32: the field comes from the body'),
    ('GET', '/v1/shelves/a/books/b', 'x', 'takes no request body'),
    ('POST', '/v1/shelves/s/books?book.title=x', '{}', 'the field comes from the body'),
    # a path-bound field named by its JSON name (file_id is fileId)
    ('POST', '/v1/files/f1:touch?fileId=other', None, 'query parameter fileId: the field comes from the path'),
    ('POST', '/v1/files/f1:touch?file_id=other', None, 'query parameter file_id: the field comes from the path'),
])
def test_bad_requests_outside_the_body(shared, method, path, body, message):
    port, server = shared
    before = len(server.calls)
    got, _ = jcall(port, method, path, body, status=400)
    assert got['code'] == 3 and message in got['message'], got
    assert len(server.calls) == before


@pytest.mark.parametrize('h2', [False, True], ids=['h1', 'h2'])
def test_a_body_past_max_body_size_is_refused(gateway, server, protos, h2):
    port = free_port()
    gateway(config(port, server.port, protos[1], max_body='1k'), workers=1)
    body = json.dumps({'fString': 'x' * 2000})
    st, _, out = call(port, 'POST', '/v1/echo', body=body, h2=h2)
    assert st == 400 and b"larger than 1024 bytes" in out, (st, out)
    assert not server.calls
    # chunked, so that no Content-Length tells in advance
    if not h2:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        c.request('POST', '/v1/echo', body=iter([body[:600].encode(), body[600:].encode()]), encode_chunked=True)
        r = c.getresponse()
        got = json.loads(r.read())
        assert r.status == 400 and 'larger than 1024 bytes' in got['message'], got
        c.close()
    assert not server.calls
    assert jcall(port, 'POST', '/v1/echo', {'fString': 'ok'})[0] == {'fString': 'ok'}


# ---- statuses ----

CODES = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501,
         13: 500, 14: 503, 15: 500, 16: 401}


@pytest.mark.parametrize('code', sorted(CODES))
def test_status_mapping(gw, code):
    port, server, alog = gw
    got, hdrs = jcall(port, 'POST', '/v1/fail', {'code': code, 'message': f'm{code} \u00e9%'}, status=CODES[code])
    assert got == {'code': code, 'message': f'm{code} \u00e9%', 'details': []}
    assert hdrs['grpc-status'] == str(code)
    assert last_log(alog)['status'] == CODES[code]


def test_error_details_are_decoded(gw):
    port, server, _ = gw
    got, _ = jcall(port, 'POST', '/v1/fail', {'code': 9, 'message': 'precondition', 'withDetails': True}, status=400)
    assert got['code'] == 9 and got['message'] == 'precondition'
    assert got['details'] == [
        {'@type': 'type.googleapis.com/library.v1.Book', 'name': 'shelves/x/books/y',
         'title': 'Title of shelves/x/books/y', 'genre': 'FICTION', 'pageCount': '1099511627777', 'tags': ['a', 'b'],
         'published': '2023-11-14T22:13:20.005Z'},
        {'@type': 'type.googleapis.com/other.Unknown', 'value': 'CAE='}], got


def test_portico_own_errors_are_json(gateway, server, protos):
    port = free_port()
    gateway(config(port, free_port(), protos[1]), workers=1)  # nobody listens there
    got, _ = jcall(port, 'GET', '/v1/shelves/a/books/b', status=503)
    assert got['code'] == 14 and got['message'], got


# ---- server streaming ----

@pytest.mark.parametrize('h2', [False, True], ids=['h1', 'h2'])
def test_server_streaming_is_a_json_array(gw, h2):
    port, server, _ = gw
    got, hdrs = jcall(port, 'GET', '/v1/shelves/s/books:stream?pageSize=3', h2=h2)
    assert [b['name'] for b in got] == [f'shelves/s/books/{i}' for i in range(3)]
    got, _ = jcall(port, 'GET', '/v1/shelves/s/books:stream?pageSize=0', h2=h2)
    assert got == []


def test_each_streamed_message_is_flushed_as_it_comes(gw):
    port, server, _ = gw
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(b'GET /v1/shelves/slow/books:stream?pageSize=2 HTTP/1.1\r\nHost: x\r\n\r\n')
    got = b''
    while b'shelves/slow/books/0' not in got:
        got += s.recv(65536)
    # the first book is here while the server still waits before the second
    assert b'shelves/slow/books/1' not in got and b'\r\n0\r\n' not in got
    while not got.endswith(b'0\r\n\r\n'):
        got += s.recv(65536)
    assert b'shelves/slow/books/1' in got and b']' in got.split(b'books/1')[-1]
    s.close()


def test_a_stream_that_fails_midway_is_left_open_with_its_status_in_trailers(gw):
    port, server, _ = gw
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    body = '{"code": 9, "message": "mid \u00e9%", "after": 2}'.encode()
    s.sendall(b'POST /v1/streamfail HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body))
    got = b''
    while not got.endswith(b'\r\n\r\n') or b'grpc-message' not in got:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    head, _, rest = got.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 200') and b'transfer-encoding: chunked' in head
    # grpc-message as gRPC has it on the wire: percent-encoded
    assert rest.endswith(b'0\r\ngrpc-status: 9\r\ngrpc-message: mid %C3%A9%25\r\n\r\n'), rest
    # the array has its two books and no ]
    payload = b''
    r = rest
    while True:
        n, _, r = r.partition(b'\r\n')
        n = int(n, 16)
        if not n:
            break
        payload += r[:n]
        r = r[n + 2:]
    assert payload.startswith(b'[') and payload.count(b'"name"') == 2 and not payload.endswith(b']'), payload
    s.close()
    # over HTTP/2, trailers
    r = subprocess.run(['nghttp', '-v', '-d', '-', f'http://127.0.0.1:{port}/v1/streamfail'], input=body,
                       capture_output=True, timeout=20)
    r.stdout = r.stdout.decode(errors='replace')
    assert 'grpc-status: 9' in r.stdout and 'grpc-message: mid %C3%A9%25' in r.stdout, r.stdout
    # a stream that fails before its first message is an error like a unary one
    got, _ = jcall(port, 'POST', '/v1/streamfail', {'code': 5, 'message': 'none', 'after': 0}, status=404)
    assert got == {'code': 5, 'message': 'none', 'details': []}


def test_several_requests_on_one_connection(gw):
    port, server, _ = gw
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    for i, (m, p, b, st) in enumerate([('GET', '/v1/shelves/a/books/1', None, 200),
                                       ('POST', '/v1/echo', '{"fInt32": 1}', 200),
                                       ('POST', '/v1/echo', '{"bad": 1}', 400),
                                       ('POST', '/v1/fail', '{"code": 5}', 404),
                                       ('GET', '/v1/nothing', None, 404),
                                       ('GET', '/v1/shelves/s/books:stream?pageSize=2', None, 200),
                                       ('DELETE', '/v1/shelves/a/books/1', None, 200)]):
        c.request(m, p, body=b)
        r = c.getresponse()
        out = r.read()
        assert r.status == st, (i, r.status, out)
        json.loads(out)
    c.close()


# ---- load errors and reload ----

def load_error(tmp_path, yaml):
    conf = tmp_path / 'p.yaml'
    conf.write_text(yaml)
    r = run_portico('-t', '-c', str(conf))
    assert r.returncode == 1, r.stderr
    return r.stderr


def bad_proto(tmp_path, text):
    d = tmp_path / 'bad'
    d.mkdir(exist_ok=True)
    (d / 'bad.proto').write_text(text)
    for f in ('google/api/http.proto', 'google/api/annotations.proto'):
        os.makedirs(d / os.path.dirname(f), exist_ok=True)
        (d / f).write_text(open(os.path.join(PROTOS, f)).read())
    return compile_protos(str(tmp_path / 'badout'), files=('bad.proto',), protos=str(d))


def test_load_errors(tmp_path, protos):
    port = free_port()
    err = load_error(tmp_path, config(port, 1, '/nonexistent/library.pb'))
    assert 'p.yaml:' in err and 'cannot read /nonexistent/library.pb' in err, err
    junk = tmp_path / 'junk.pb'
    junk.write_bytes(b'\xff\xff\xff\xff')
    err = load_error(tmp_path, config(port, 1, junk))
    assert 'not a FileDescriptorSet' in err, err
    err = load_error(tmp_path, config(port, 1, protos[1]).replace('services: [library.v1.Library]',
                                                                   'services: [library.v1.Nope]'))
    assert 'service library.v1.Nope is not in' in err, err
    err = load_error(tmp_path, config(port, 1, protos[1]).replace(
        'services: [library.v1.Library]', 'services: [library.v1.Library, library.v1.Library]'))
    assert 'service library.v1.Library is listed twice' in err, err
    err = load_error(tmp_path, config(port, 1, protos[1]).replace('library.v1.Library]', 'library.v1.Plain]'))
    assert 'method library.v1.Plain/Echo has no google.api.http rule' in err, err
    err = load_error(tmp_path, config(port, 1, protos[1]).replace('library.v1.Library]', 'library.v1.Bad]'))
    assert 'library.v1.Bad/Chat is bidirectional streaming and has an HTTP rule' in err, err
    err = load_error(tmp_path, config(port, 1, protos[1]).replace('services: [library.v1.Library]',
                                                                   'method: library.v1.Plain/Chat'))
    assert 'library.v1.Plain/Chat is bidirectional streaming' in err, err
    err = load_error(tmp_path, config(port, 1, protos[1], scheme='http'))
    assert 'grpc-transcode needs a route to an upstream of scheme grpc or grpcs' in err, err
    # a line and a column
    assert any(ln.split(':')[1].isdigit() and ln.split(':')[2].isdigit() for ln in err.splitlines() if 'p.yaml:' in ln)


@pytest.mark.parametrize('rule,message', [
    ('get: "/v1/{nope}"', 'variable nope is not a field of'),
    ('get: "/v1/{tags}"', 'variable tags is not a field of'),
    ('get: "v1/x"', "a template starts with '/'"),
    ('get: "/v1/**/x"', "'**' must be the last segment"),
    ('get: "/v1/{name=a/{b}}"', 'a variable inside a variable'),
    ('post: "/v1/x" body: "nope"', 'body "nope" is not a field'),
    ('get: "/v1/x" response_body: "nope"', 'response_body "nope" is not a field'),
])
def test_bad_rules_are_load_errors(tmp_path, rule, message):
    pb = bad_proto(tmp_path, '''syntax = "proto3";
package bad.v1;
import "google/api/annotations.proto";
message Req { string name = 1; repeated string tags = 2; }
service S { rpc M(Req) returns (Req) { option (google.api.http) = { %s }; } }
''' % rule)
    err = load_error(tmp_path, config(free_port(), 1, pb).replace('library.v1.Library', 'bad.v1.S'))
    assert message in err and 'bad.v1.S/M' in err, err


def test_a_descriptor_set_without_its_imports_is_refused(tmp_path):
    d = tmp_path / 'noimports'
    d.mkdir()
    pb = d / 'lib.pb'
    subprocess.run(['protoc', f'-I{PROTOS}', '-I/usr/include', f'--descriptor_set_out={pb}', 'library.proto'],
                   check=True, cwd=PROTOS)
    err = load_error(tmp_path, config(free_port(), 1, pb))
    assert 'not in the descriptor set (was protoc given --include_imports?)' in err, err


def test_reload_picks_up_a_new_descriptor(gateway, server, protos, tmp_path):
    port = free_port()
    pb = tmp_path / 'live.pb'
    pb.write_bytes(open(protos[1], 'rb').read())
    g = gateway(config(port, server.port, pb), workers=1)
    assert call(port, 'GET', '/v1/book/shelves/a/books/b')[0] == 404
    # a new version of the service: GetBook at another path
    d = tmp_path / 'v2'
    d.mkdir()
    text = open(os.path.join(PROTOS, 'library.proto')).read()
    assert 'get: "/v1/{name=shelves/*/books/*}" };' in text
    (d / 'library.proto').write_text(text.replace('get: "/v1/{name=shelves/*/books/*}" };',
                                                  'get: "/v1/book/{name=**}" };', 1))
    for f in ('google/api/http.proto', 'google/api/annotations.proto'):
        os.makedirs(d / os.path.dirname(f), exist_ok=True)
        (d / f).write_text(open(os.path.join(PROTOS, f)).read())
    new = compile_protos(str(tmp_path / 'v2out'), protos=str(d))
    pb.write_bytes(open(new, 'rb').read())
    g.reload()
    got, _ = jcall(port, 'GET', '/v1/book/shelves/a/books/b')
    assert got['name'] == 'shelves/a/books/b'
    # a broken descriptor: the reload fails and the gateway keeps the last one
    pb.write_bytes(b'\x0a\xff')
    g.reload(ok=False)
    assert 'library.pb' in g.log() or 'live.pb' in g.log()
    assert jcall(port, 'GET', '/v1/book/shelves/a/books/c')[0]['name'] == 'shelves/a/books/c'


def test_clients_that_vanish(gw):
    """Mid-body: nothing reaches the upstream. Mid-stream: the upstream
    call is cancelled. The gateway goes on either way."""
    port, server, alog = gw
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(b'POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"fInt32": ')
    time.sleep(0.2)
    s.close()
    wait_for(lambda: os.path.exists(alog) and '"status":499' in open(alog).read(), 5, what='a 499 log line')
    assert not server.calls
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(b'GET /v1/shelves/slow/books:stream?pageSize=3 HTTP/1.1\r\nHost: x\r\n\r\n')
    got = b''
    while b'shelves/slow/books/0' not in got:
        got += s.recv(65536)
    s.close()
    got, _ = jcall(port, 'GET', '/v1/shelves/a/books/after')
    assert got['name'] == 'shelves/a/books/after'
    wait_for(lambda: open(alog).read().count('\n') >= 3, 10, what='three log lines')


@pytest.mark.parametrize('pieces', [1, 2, 5])
def test_a_body_in_pieces(gw, pieces):
    """The head first, then the body in pieces a little apart."""
    port, server, _ = gw
    body = json.dumps({'fString': 'a' * 3000}).encode()
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(b'POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n'
              % len(body))
    step = len(body) // pieces + 1
    for i in range(0, len(body), step):
        time.sleep(0.1)
        s.sendall(body[i:i + step])
    got = b''
    while b'\r\n\r\n' not in got or not got.endswith(b'}'):
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b'HTTP/1.1 200'), got[:200]
    assert json.loads(got.split(b'\r\n\r\n', 1)[1]) == {'fString': 'a' * 3000}
    s.close()
    # over HTTP/2, 50 KB at 100 KB/s
    big = json.dumps({'fString': 'b' * 50000})
    r = subprocess.run(['curl', '-s', '--http2-prior-knowledge', '--limit-rate', '100k', '--data-binary', '@-',
                        f'http://127.0.0.1:{port}/v1/echo'], input=big.encode(), capture_output=True, timeout=20)
    assert json.loads(r.stdout) == {'fString': 'b' * 50000}


def test_pipelined_requests_after_a_transcoded_one(gw):
    port, server, _ = gw
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    one = b'POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 13\r\n\r\n{"fInt32": %d}'
    s.sendall(one % 1 + one % 2 + b'GET /v1/shelves/a/books/b HTTP/1.1\r\nHost: x\r\n\r\n')
    got = b''
    while got.count(b'HTTP/1.1 200') < 3 or not got.endswith(b'}'):
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    assert b'{"fInt32":1}' in got and b'{"fInt32":2}' in got and b'shelves/a/books/b' in got, got
    s.close()
    assert [c[0] for c in server.calls] == ['Echo', 'Echo', 'GetBook']


def test_a_global_setting_leaves_other_routes_alone(gateway, server, protos):
    port = free_port()
    gateway(f'''listeners: [{{ name: main, address: 127.0.0.1:{port} }}]
upstreams: [{{ name: g, scheme: grpc, targets: ["127.0.0.1:{server.port}"] }}]
global_filters:
  grpc-transcode: {{ descriptor: {protos[1]}, services: [library.v1.Library] }}
routes:
  - {{ name: rest, match: {{ paths: ["/v1/*"] }}, upstream: g }}
  - {{ name: other, match: {{ paths: ["/other"] }}, respond: {{ status: 200, body: "plain" }} }}
''', workers=1)
    st, _, out = call(port, 'GET', '/other')
    assert (st, out) == (200, b'plain')
    assert jcall(port, 'GET', '/v1/shelves/a/books/b')[0]['name'] == 'shelves/a/books/b'


def test_an_upstream_that_fails_after_its_head_gets_a_json_error(gateway, server, protos):
    port = free_port()
    gateway(config(port, server.port, protos[1]).replace('timeouts: { read: 5s }', 'timeouts: { read: 1s }'),
            workers=1)
    got, _ = jcall(port, 'GET', '/v1/shelves/slowhead/books/b', status=504)
    assert got['code'] == 4 and got['message'], got


def test_expect_100_continue(gw):
    port, server, _ = gw
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    body = b'{"fInt32": 7}'
    s.sendall(b'POST /v1/echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n' % len(body))
    got = s.recv(65536)
    assert got.startswith(b'HTTP/1.1 100 Continue\r\n\r\n'), got
    s.sendall(body)
    got = got[25:]
    while not got.endswith(b'}'):
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b'HTTP/1.1 200') and got.endswith(b'{"fInt32":7}'), got
    s.close()


def framed(msg, flag=0):
    return bytes([flag]) + len(msg).to_bytes(4, 'big') + msg


@pytest.mark.parametrize('data, status, code', [
    (framed(b''), 200, 0),                                   # an empty Everything: {}
    (framed(b'\x18\x07'), 200, 0),                           # fInt32: 7
    (framed(b'\x18\x07')[:6], 500, 13),                      # the upstream's message cut short, then grpc-status 0
    (framed(b'\x18\x07', flag=1), 500, 13),                  # compressed, which was never offered
    (framed(b'\x18\x07') + framed(b'\x18\x08'), 500, 13),    # two messages for a unary method
    (framed(b'\x18'), 500, 13),                              # not an Everything: a tag without its value
], ids=['empty', 'one', 'cut', 'compressed', 'two', 'not-protobuf'])
def test_what_the_upstream_sent_decides_the_status_fields(gateway, protos, data, status, code):
    """The answer's grpc-status header is the code of its JSON body, not the
    upstream's grpc-status: 0 trailer when the answer could not be read
    (the hostile review found the upstream's passed on next to a 500)."""
    import base64
    from grpc_server import RawEarlyUpstream
    from library_server import status_details
    # details the upstream sends with its grpc-status 0: never the details of an error of Portico's
    details = base64.b64encode(status_details(0, 'fine', [('type.googleapis.com/library.v1.Book', b'\x0a\x01x')]))
    up = RawEarlyUpstream(data=data, trailers=[('grpc-status', '0'), ('x-early', 'yes'),
                                               ('grpc-status-details-bin', details.decode().rstrip('='))])
    try:
        port = free_port()
        gateway(config(port, up.port, protos[1]), workers=1)
        for h2 in (False, True):
            st, hdrs, out = call(port, 'POST', '/v1/echo', body='{}', h2=h2,
                                 headers={'content-type': 'application/json'})
            assert st == status, (st, out)
            assert hdrs['grpc-status'] == str(code), hdrs
            if code == 0 or data == framed(b'\x18\x07')[:6]:  # the trailers were read: the others pass
                assert hdrs['x-early'] == 'yes', hdrs
            got = json.loads(out)
            if code:
                assert got['code'] == code and 'grpc-message' not in hdrs, (got, hdrs)
                assert got['details'] == [] and 'grpc-status-details-bin' not in hdrs, (got, hdrs)
            else:
                assert 'grpc-status-details-bin' in hdrs, hdrs
                assert got == ({} if data == framed(b'') else {'fInt32': 7}), got
        assert up.calls == 2
    finally:
        up.stop()


def test_http10_clients_get_unary_answers_and_the_connection_closed(gw):
    """An HTTP/1.0 client may call a method whose answer is one message (a
    Content-Length, then the close: no chunks for it); a streamed answer
    needs chunks, so a streaming method is 505 over HTTP/1.0."""
    port, server, alog = gw

    def raw(req):
        s = socket.create_connection(('127.0.0.1', port), timeout=10)
        s.sendall(req)
        out = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break  # the gateway closed: the answer is whole
            out += chunk
        s.close()
        return out

    body = b'{"fInt32": 7, "fString": "x"}'
    for extra in (b'', b'Connection: keep-alive\r\n'):
        out = raw(b'POST /v1/echo HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n' + extra +
                  b'Content-Length: %d\r\n\r\n' % len(body) + body)
        head, _, got = out.partition(b'\r\n\r\n')
        assert head.startswith(b'HTTP/1.1 200 ') and b'transfer-encoding' not in head.lower(), out
        assert b'content-length: %d' % len(got) in head.lower() and json.loads(got) == {'fInt32': 7, 'fString': 'x'}
    assert [c[0] for c in server.calls] == ['Echo', 'Echo']
    out = raw(b'GET /v1/shelves/s1/books:stream HTTP/1.0\r\nHost: x\r\n\r\n')
    head, _, got = out.partition(b'\r\n\r\n')
    assert head.startswith(b'HTTP/1.1 505 ') and b'content-type: application/json' in head.lower(), out
    assert b'grpc-status: 12' in head.lower() and json.loads(got)['code'] == 12, out
    assert [c[0] for c in server.calls] == ['Echo', 'Echo']  # the streaming call never reached the upstream


@pytest.mark.parametrize('size', [16 * 1024, 200 * 1024, 1000 * 1024])
def test_large_bodies_sent_at_once(gw, size):
    """A JSON body is taken whole before the call starts: one sent in a
    single burst, larger than a read, is read to its end (over HTTP/1.1 and
    HTTP/1.0 it waited for an event that never came, then got 504)."""
    port, server, _ = gw
    text = 'c' * (size - 20)
    body = json.dumps({'fString': text}).encode()
    for version in (b'1.1', b'1.0'):
        s = socket.create_connection(('127.0.0.1', port), timeout=20)
        s.sendall(b'POST /v1/echo HTTP/' + version + b'\r\nHost: x\r\nContent-Type: application/json\r\n'
                  b'Connection: close\r\nContent-Length: %d\r\n\r\n' % len(body) + body)
        got = b''
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        s.close()
        head, _, out = got.partition(b'\r\n\r\n')
        assert head.startswith(b'HTTP/1.1 200 '), got[:300]
        assert json.loads(out) == {'fString': text}
    st, _, out = call(port, 'POST', '/v1/echo', body=body, h2=True)
    assert st == 200 and json.loads(out) == {'fString': text}
    assert [c[0] for c in server.calls] == ['Echo'] * 3


def test_an_interim_response_before_the_head_is_passed_over(gateway, protos):
    from grpc_server import RawEarlyUpstream
    up = RawEarlyUpstream(data=framed(b'\x18\x07'), interim='103')
    try:
        port = free_port()
        gateway(config(port, up.port, protos[1]), workers=1)
        got, hdrs = jcall(port, 'POST', '/v1/echo', {})
        assert got == {'fInt32': 7} and hdrs['grpc-status'] == '0' and 'link' not in hdrs, (got, hdrs)
    finally:
        up.stop()
