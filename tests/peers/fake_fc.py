#!/usr/bin/env python3
"""A scripted flight controller (pymavlink, MAVLink 2, ardupilotmega) for Kestrel's MAVLink tests.

Acts as sysid 1 / compid 1 (ArduCopter-like): HEARTBEAT 1 Hz, ATTITUDE 50 Hz, GLOBAL_POSITION_INT
10 Hz, TIMESYNC requests 2 Hz; answers TIMESYNC like ArduPilot and SET_MESSAGE_INTERVAL with
COMMAND_ACK. Records what the companion (compid 191) sends and prints one JSON object:
CRC/parse errors, message counts, heartbeat times, every DETS array, TIMESYNC answer delays (of
requests sent once the companion was heard; earlier ones apart), and
each CAMERA_TRACKING_GEO_STATUS with its distance to the position this script computes itself for
the target pixel (numpy rotation matrices, independent of Kestrel's code).
"""
import argparse
import json
import math
import os
import sys
import time

os.environ["MAVLINK20"] = "1"
import numpy as np  # noqa: E402
from pymavlink import mavutil  # noqa: E402

R_EARTH = 6378137.0


def expected_target(a):
    """Ground position of pixel (u, v) for a down-looking camera, image top to the nose."""
    x = (a.u - a.cx) / a.fx
    y = (a.v - a.cy) / a.fy
    body = np.array([-y, x, 1.0])
    cr, sr = math.cos(math.radians(a.roll_deg)), math.sin(math.radians(a.roll_deg))
    cp, sp = math.cos(math.radians(a.pitch_deg)), math.sin(math.radians(a.pitch_deg))
    cy, sy = math.cos(math.radians(a.yaw_deg)), math.sin(math.radians(a.yaw_deg))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ned = rz @ ry @ rx @ body
    t = a.rel_alt / ned[2]
    north, east = t * ned[0], t * ned[1]
    lat = a.lat + math.degrees(north / R_EARTH)
    lon = a.lon + math.degrees(east / (R_EARTH * math.cos(math.radians(a.lat))))
    return lat, lon, float(t * np.linalg.norm(ned))


def metres_between(lat1, lon1, lat2, lon2):
    dn = math.radians(lat2 - lat1) * R_EARTH
    de = math.radians(lon2 - lon1) * R_EARTH * math.cos(math.radians(lat1))
    return math.hypot(dn, de)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url", help="e.g. udpin:127.0.0.1:14550 or /dev/pts/5")
    p.add_argument("--baud", type=int, default=921600)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--lat", type=float, default=47.397742)
    p.add_argument("--lon", type=float, default=8.545594)
    p.add_argument("--alt-amsl", type=float, default=538.0)
    p.add_argument("--rel-alt", type=float, default=50.0)
    p.add_argument("--roll-deg", type=float, default=0.0)
    p.add_argument("--pitch-deg", type=float, default=0.0)
    p.add_argument("--yaw-deg", type=float, default=90.0)
    p.add_argument("--signing-key", help="64 hex chars: sign outgoing, accept only valid signatures")
    for k, v in (("u", 800.0), ("v", 330.0), ("fx", 640.0), ("fy", 640.0), ("cx", 640.0), ("cy", 360.0)):
        p.add_argument("--" + k, type=float, default=v)
    a = p.parse_args()

    conn = mavutil.mavlink_connection(a.url, baud=a.baud, source_system=1, source_component=1,
                                      dialect="ardupilotmega", robust_parsing=True)
    if a.signing_key:
        conn.setup_signing(bytes.fromhex(a.signing_key), sign_outgoing=True, link_id=1)
    mav = conn.mav
    boot = time.monotonic()
    boot_ms = lambda: int((time.monotonic() - boot) * 1000)  # noqa: E731
    boot_ns = lambda: int((time.monotonic() - boot) * 1e9)  # noqa: E731
    exp_lat, exp_lon, exp_slant = expected_target(a)
    out = {"bad_data": 0, "counts": {}, "heartbeats": [], "hb_states": [], "dets": [],
           "timesync_delay_ms": [], "timesync_before_heard_ms": [], "timesync_answered_to_us": 0, "geo": [], "acks_sent": 0,
           "interval_requests": [], "src": [], "expected": {"lat": exp_lat, "lon": exp_lon,
                                                           "slant": exp_slant}}
    pending = {}
    heard = False  # the companion (compid 191) has sent something this session
    next_hb = next_att = next_pos = next_ts = 0.0
    end = time.monotonic() + a.duration
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_hb:
            next_hb = now + 1.0
            mav.heartbeat_send(mavutil.mavlink.MAV_TYPE_QUADROTOR, mavutil.mavlink.MAV_AUTOPILOT_ARDUPILOTMEGA,
                               0, 0, mavutil.mavlink.MAV_STATE_ACTIVE)
        if now >= next_att:
            next_att = now + 0.02
            mav.attitude_send(boot_ms(), math.radians(a.roll_deg), math.radians(a.pitch_deg),
                              math.radians(a.yaw_deg), 0, 0, 0)
        if now >= next_pos:
            next_pos = now + 0.1
            mav.global_position_int_send(boot_ms(), int(round(a.lat * 1e7)), int(round(a.lon * 1e7)),
                                         int(a.alt_amsl * 1000), int(a.rel_alt * 1000), 0, 0, 0, 0)
        if now >= next_ts:
            next_ts = now + 0.5
            ts1 = time.monotonic_ns()
            # A request sent before the companion was heard may sit in the link's buffers until
            # it (re)opens the port: its answer's delay is the reconnect's, not the companion's.
            pending[ts1] = heard
            mav.timesync_send(0, ts1)
        while True:
            m = conn.recv_msg()
            if m is None:
                break
            t = m.get_type()
            if t == "BAD_DATA":
                out["bad_data"] += 1
                continue
            if m.get_srcComponent() != 191:
                continue
            heard = True
            out["counts"][t] = out["counts"].get(t, 0) + 1
            src = [m.get_srcSystem(), m.get_srcComponent()]
            if src not in out["src"]:
                out["src"].append(src)
            if t == "HEARTBEAT":
                out["heartbeats"].append(time.monotonic())
                out["hb_states"].append(m.system_status)
            elif t == "DEBUG_FLOAT_ARRAY":
                out["dets"].append({"name": m.name, "array_id": m.array_id, "time_usec": m.time_usec,
                                    "data": [float(x) for x in m.data]})
            elif t == "TIMESYNC":
                if m.tc1 == 0:
                    mav.timesync_send(boot_ns(), m.ts1)
                elif m.ts1 in pending:
                    delay = (time.monotonic_ns() - m.ts1) / 1e6
                    if pending.pop(m.ts1):
                        out["timesync_delay_ms"].append(delay)
                    else:
                        out["timesync_before_heard_ms"].append(delay)
            elif t == "COMMAND_LONG" and m.command == mavutil.mavlink.MAV_CMD_SET_MESSAGE_INTERVAL:
                out["interval_requests"].append([int(m.param1), m.param2])
                mav.command_ack_send(m.command, mavutil.mavlink.MAV_RESULT_ACCEPTED)
                out["acks_sent"] += 1
            elif t == "CAMERA_TRACKING_GEO_STATUS":
                lat, lon = m.lat * 1e-7, m.lon * 1e-7
                out["geo"].append({"lat": lat, "lon": lon, "dist": m.dist,
                                   "error_m": metres_between(exp_lat, exp_lon, lat, lon)})
        time.sleep(0.001)
    out["crc_errors"] = mav.total_crc_errors if hasattr(mav, "total_crc_errors") else 0
    out["receive_errors"] = mav.total_receive_errors
    sg = mav.signing
    out["signing"] = {"signed_seen": sg.sig_count, "good": sg.goodsig_count, "bad": sg.badsig_count}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
