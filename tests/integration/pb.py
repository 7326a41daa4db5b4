"""Hand-made protobuf for the credential RPCs of aileron.v1 (proto/aileron/v1/enclave.proto),
on top of the frame helpers of harness.py. Standard library only: the tests stay an
independent client of the enclave, not a second user of its generated code."""

from harness import _read_varint, field_bytes, varint

# InjectionKind
BEARER, HEADER = 1, 2


def field_varint(num, value):
    return varint(num << 3) + varint(value)


def field_string(num, text):
    return field_bytes(num, text.encode())


def binding(injection, prefixes, header_name=""):
    """aileron.v1.Binding{injection, header_name, allowed_prefixes}."""
    out = field_varint(1, injection)
    if header_name:
        out += field_string(2, header_name)
    for p in prefixes:
        out += field_string(3, p)
    return out


def put_credential(name, secret, binding_bytes, replace=False, expires_at=0):
    """PutCredentialRequest; proto3 leaves zero values out, so does this."""
    out = field_string(1, name) + field_bytes(2, secret) + field_bytes(3, binding_bytes)
    if expires_at:
        out += field_varint(4, expires_at)
    if replace:
        out += field_varint(5, 1)
    return out


def revoke_credential(name):
    return field_string(1, name)


def use_credential(name, method, url, actor=""):
    out = field_string(1, name) + field_string(2, method) + field_string(3, url)
    if actor:
        out += field_string(6, actor)
    return out


def parse_fields(data):
    """Every field of one message as a list of (number, value) in wire order: an int
    for varints, bytes for length-delimited fields. Other wire types are refused,
    as is anything truncated."""
    i, out = 0, []
    while i < len(data):
        key, i = _read_varint(data, i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        if wt == 0:
            v, i = _read_varint(data, i)
        elif wt == 2:
            ln, i = _read_varint(data, i)
            if i + ln > len(data):
                raise ValueError("truncated field")
            v, i = data[i:i + ln], i + ln
        else:
            raise ValueError(f"unexpected wire type {wt}")
        out.append((num, v))
    return out


def parse_binding(data):
    b = {"injection": 0, "header_name": "", "allowed_prefixes": [], "ca_pem": b""}
    for num, v in parse_fields(data):
        if num == 1:
            b["injection"] = v
        elif num == 2:
            b["header_name"] = v.decode()
        elif num == 3:
            b["allowed_prefixes"].append(v.decode())
        elif num == 4:
            b["ca_pem"] = v
    return b


def parse_credential_info(data):
    """CredentialInfo as a dict, with the proto3 defaults for absent fields."""
    info = {"name": "", "version": 0, "binding": None, "has_ca": False, "created_at": 0, "expires_at": 0,
            "revoked": False}
    for num, v in parse_fields(data):
        if num == 1:
            info["name"] = v.decode()
        elif num == 2:
            info["version"] = v
        elif num == 3:
            info["binding"] = parse_binding(v)
        elif num == 4:
            info["has_ca"] = bool(v)
        elif num == 5:
            info["created_at"] = v
        elif num == 6:
            info["expires_at"] = v
        elif num == 7:
            info["revoked"] = bool(v)
    return info


def parse_single_credential(body):
    """Put/RevokeCredentialResponse{credential = 1}."""
    infos = [parse_credential_info(v) for num, v in parse_fields(body) if num == 1]
    if len(infos) != 1:
        raise ValueError(f"expected one credential, got {len(infos)}")
    return infos[0]


def parse_list(body):
    """ListCredentialsResponse{repeated credentials = 1} as a list of dicts."""
    return [parse_credential_info(v) for num, v in parse_fields(body) if num == 1]


# CredentialKind
KIND_UNSPECIFIED, KIND_SECRET = 0, 1


def put_credential_of_kind(name, secret, binding_bytes, kind, replace=False):
    """PutCredentialRequest with CredentialKind |kind| (field 6), any number, even one
    the enclave does not know; 0 is left out as proto3 does."""
    out = put_credential(name, secret, binding_bytes, replace=replace)
    if kind:
        out += field_varint(6, kind)
    return out


def list_credentials(page_after="", page_size=0):
    """ListCredentialsRequest{page_after = 1, page_size = 2}; zero values left out."""
    out = b""
    if page_after:
        out += field_string(1, page_after)
    if page_size:
        out += field_varint(2, page_size)
    return out


def credential_kind(info_bytes):
    """The CredentialKind (field 8) of one serialized CredentialInfo, 0 if absent."""
    kinds = [v for num, v in parse_fields(info_bytes) if num == 8]
    return kinds[-1] if kinds else 0


def parse_list_page(body):
    """ListCredentialsResponse as (credentials, next_page_after): each credential as
    parse_credential_info gives it, plus its "kind"."""
    infos, next_after = [], ""
    for num, v in parse_fields(body):
        if num == 1:
            info = parse_credential_info(v)
            info["kind"] = credential_kind(v)
            infos.append(info)
        elif num == 2:
            next_after = v.decode()
    return infos, next_after
