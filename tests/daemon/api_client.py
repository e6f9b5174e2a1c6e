#!/usr/bin/env python3
"""A second, independent API client: python3-grpcio with mutual TLS.

Generates the message classes from proto/ with protoc (python3-grpcio has no
code generator; grpc's generic unary calls need only the messages), then, as
the client certificate --client of the test PKI:
  launches echo in tenant-a and tenant-b, lists, and prints one line each:
    launch tenant-a: OK ns:tenant-a:echo
    launch tenant-b: PERMISSION_DENIED <message>
    list: <process ids, comma-separated>
Exit 0 when every call got an answer (allowed or refused); the C++ test
(api_access_test.cc) judges the lines.
"""
import argparse
import importlib
import os
import subprocess
import sys

import grpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pki", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--proto-root", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    subprocess.run(["protoc", "--proto_path=" + args.proto_root, "--python_out=" + args.out,
                    os.path.join(args.proto_root, "prism/launcher/launcher.proto")], check=True)
    sys.path.insert(0, args.out)
    pb = importlib.import_module("prism.launcher.launcher_pb2")

    def read(name):
        with open(os.path.join(args.pki, name), "rb") as f:
            return f.read()

    creds = grpc.ssl_channel_credentials(root_certificates=read("ca.crt"),
                                         private_key=read(args.client + ".key"),
                                         certificate_chain=read(args.client + ".crt"))
    channel = grpc.secure_channel("127.0.0.1:%d" % args.port, creds,
                                  options=[("grpc.ssl_target_name_override", "localhost")])
    service = "/prism.launcher.PatternLauncher/"
    launch = channel.unary_unary(service + "LaunchPattern",
                                 request_serializer=pb.LaunchRequest.SerializeToString,
                                 response_deserializer=pb.LaunchResponse.FromString)
    list_patterns = channel.unary_unary(service + "ListPatterns",
                                        request_serializer=pb.ListPatternsRequest.SerializeToString,
                                        response_deserializer=pb.ListPatternsResponse.FromString)
    for ns in ("tenant-a", "tenant-b"):
        try:
            r = launch(pb.LaunchRequest(pattern_name="echo", namespace=ns,
                                        isolation=pb.ISOLATION_NAMESPACE), timeout=30)
            print("launch %s: OK %s" % (ns, r.process_id))
        except grpc.RpcError as e:
            print("launch %s: %s %s" % (ns, e.code().name, e.details()))
    r = list_patterns(pb.ListPatternsRequest(), timeout=10)
    print("list: " + ",".join(sorted(p.process_id for p in r.patterns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
