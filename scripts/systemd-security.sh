#!/usr/bin/env bash
# The exposure scores of the shipped systemd units (systemd-analyze security --offline, 0 safe
# to 10 unsafe), against their limits: 2.0 for the HTTP-only unit, 6.0 for the unit that must
# mount FUSE; and that the FUSE unit has no mount namespace of its own. Exits 1 if a unit is
# over its limit or the mount would be hidden.
. "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null || need_pkgs systemd
fail=0
for pair in cairnd.service:2.0 cairnd-fuse.service:6.0; do
    unit=${pair%%:*} limit=${pair##*:}
    score=$(cd deploy/systemd && systemd-analyze security --offline=true "$unit" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    verdict=$(awk -v s="$score" -v l="$limit" 'BEGIN { print (s != "" && s + 0 <= l + 0) ? 1 : 0 }')
    printf '%-22s exposure %s (limit %s)%s\n' "$unit" "$score" "$limit" "$([ "$verdict" = 1 ] || echo '  OVER')"
    [ "$verdict" = 1 ] || fail=1
done
# The FUSE unit's mount must be visible on the host: no option that gives the service a mount
# namespace of its own (the options systemd's exec_needs_mount_namespace() checks).
private=$(grep -oE '^(PrivateTmp|PrivateDevices|PrivateMounts|PrivateNetwork|NetworkNamespacePath|PrivateIPC|IPCNamespacePath|ProtectSystem|ProtectHome|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ProcSubset|ReadOnlyPaths|ReadWritePaths|InaccessiblePaths|ExecPaths|NoExecPaths|TemporaryFileSystem|BindPaths|BindReadOnlyPaths|RootDirectory|RootImage|MountImages|ExtensionImages|ExtensionDirectories|MountAPIVFS|MountFlags|LogNamespace|DynamicUser)=' \
    deploy/systemd/cairnd-fuse.service | tr -d = | tr '\n' ' ' || true)
if [ -n "$private" ]; then
    echo "cairnd-fuse.service   mount namespace: $private(the mount would be hidden from the host)"
    fail=1
else
    echo "cairnd-fuse.service   mount namespace: the host's (the mount is visible on the host)"
fi
exit $fail
