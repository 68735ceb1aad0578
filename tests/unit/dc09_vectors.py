# ruff: noqa: E501  (real frames, one a line)
"""Real DC-09 frames from public test suites, with what each must parse to.

Sources (read with the search tool, 2026-12-02):
- sdn: Swissdotnet SIA-DC-09 library, ParsingStandardTest.java (hex keys);
- pysia: pysiaalarm tests/test_sia_package_cases.py (its lengths are not the body's length:
  the frames are "repaired" by recomputing length and CRC before the content is checked);
- fio: fioletoven/dc09 common/src/dc09/message.tests.rs;
- iob: ioBroker.sia test/siaCommand, test/siaCommandENC (text key 0123456789ABCDEF);
- misc: frames quoted in other public receivers' code and docs (found with find_string).

``expect`` holds what must hold: token, encrypted, seq, receiver, prefix, account, and for
events the codes (``codes``) and timestamp (``ts``, ISO). ``key`` with ``key_encoding``.
"""

from __future__ import annotations

from typing import Any

SDN_KEY = "ABCDABCDABCDABCDABCDABCDABCDABCD"

# Whole frames whose CRC and length are right (LF/CR added where a source trimmed them).
FRAMES: list[dict[str, Any]] = [
    # --- Swissdotnet: replies and events, upper and lower case hex
    {"source": "sdn", "kind": "reply", "frame": '\n2729002e"ACK"0001L0#080027E62A64[]_16:07:07,04-14-2015\r',
     "expect": {"token": "ACK", "seq": "0001", "receiver": "", "prefix": "L0", "account": "080027E62A64"}},
    {"source": "sdn", "kind": "reply", "frame": '\nA62A0012"ACK"0001L0#7099[]\r',
     "expect": {"token": "ACK", "seq": "0001", "prefix": "L0", "account": "7099"}},
    {"source": "sdn", "kind": "reply", "frame": '\n01fc0037"ACK"0000Rc0ffdL1234#080027E62A64[]_12:10:40,06-22-2015\r',
     "expect": {"token": "ACK", "receiver": "Rc0ffd", "prefix": "L1234", "account": "080027E62A64"}},
    {"source": "sdn", "kind": "reply", "frame": '\n416A0036"ACK"0001R5678L1234#080027E62A64[]_16:07:53,04-14-2015\r',
     "expect": {"token": "ACK", "receiver": "R5678", "prefix": "L1234"}},
    {"source": "sdn", "kind": "reply", "frame": '\nE34C0062"*ACK"0001R5678L1234#080027E62A64[14F088FF5DCB19D1908069507EAB97C7CDB20F1C6EFA550BB59864D54B2DFA1C\r',
     "key": SDN_KEY, "key_encoding": "hex",
     "expect": {"token": "ACK", "encrypted": True, "plain": "]_16:08:12,04-14-2015"}},
    {"source": "sdn", "kind": "reply", "frame": '\n02B70063"*ACK"0000RC0FFDL1234#00900B376AB6[5F1BEAF37775DEC5F901894BDD25D9565C122B2BBAAD72E84E23B8F75554EF8C\r',
     "key": "28376EF26E782E1A4A160E3276E5FB93", "key_encoding": "hex",
     "expect": {"token": "ACK", "encrypted": True, "plain": "]_08:06:26,04-27-2015"}},
    {"source": "sdn", "kind": "reply", "frame": '\n3C830025"NAK"0000R0L0A0[]_16:09:09,04-14-2015\r',
     "expect": {"token": "NAK", "seq": "0000", "receiver": "R0", "prefix": "L0", "account": ""}},
    {"source": "sdn", "kind": "reply", "frame": '\n3D430025"NAK"0001R0L0A0[]_16:09:09,04-14-2015\r',
     "expect": {"token": "NAK", "seq": "0001"}},
    {"source": "sdn", "kind": "reply", "frame": '\nEB510025"NAK"0001R0L0#0[]_16:09:09,04-14-2015\r',
     "expect": {"token": "NAK", "account": "0"}},
    {"source": "sdn", "kind": "reply", "frame": '\nCD400011"NAK"0000R0L0A0[]\r', "expect": {"token": "NAK"}},
    {"source": "sdn", "kind": "reply", "frame": '\nBE7D0025"NAK"0000R1L0A0[]_16:09:09,04-14-2015\r', "expect": {"token": "NAK", "receiver": "R1"}},
    {"source": "sdn", "kind": "reply", "frame": '\nC5D70025"NAK"0000R0L1A0[]_16:09:09,04-14-2015\r', "expect": {"token": "NAK", "prefix": "L1"}},
    {"source": "sdn", "kind": "reply", "frame": '\nA04E0025"NAK"0000R0L0A1[]_16:09:09,04-14-2015\r', "expect": {"token": "NAK"}},
    {"source": "sdn", "kind": "null", "frame": '\nC26E0038"NULL"0000RC0FFDL1234#080027E62A64[]_13:40:27,06-22-2015\r',
     "expect": {"token": "NULL", "receiver": "RC0FFD", "ts": "2015-06-22T13:40:27+00:00"}},
    {"source": "sdn", "kind": "null", "frame": '\n8a590038"NULL"0000Rc0ffdL1234#080027E62A64[]_15:50:24,06-22-2015\r',
     "expect": {"token": "NULL", "receiver": "Rc0ffd", "ts": "2015-06-22T15:50:24+00:00"}},
    {"source": "sdn", "kind": "null", "frame": '\n533F0038"NULL"0000RC0FFDL1234#080027E62A64[]_15:52:00,06-22-2015\r',
     "expect": {"token": "NULL"}},
    {"source": "sdn", "kind": "null", "frame": '\n1D85002B"NULL"0001L0#00653210[]_09:17:32,05-18-2016\r',
     "expect": {"token": "NULL", "seq": "0001", "account": "00653210", "ts": "2016-05-18T09:17:32+00:00"}},
    {"source": "sdn", "kind": "null", "frame": '\n525a0024"NULL"0000Rc0ffdL1234#080027E62A64[]\r',
     "expect": {"token": "NULL", "ts": None}},
    {"source": "sdn", "kind": "null", "frame": '\n596E0024"NULL"0000RC0FFDL1234#080027E62A64[]\r',
     "expect": {"token": "NULL", "ts": None}},
    {"source": "sdn", "kind": "null", "frame": '\nCAC10064"*NULL"0000RC0FFDL1234#080027E62A64[70D7DC480FA7DC0DE428CE02447BA2E2981A161EA14CB780D2CD917208059E11\r',
     "key": SDN_KEY, "key_encoding": "hex",
     "expect": {"token": "NULL", "encrypted": True, "ts": "2015-06-22T13:43:09+00:00"}},
    {"source": "sdn", "kind": "null", "frame": '\n073D005b"*NULL"0000L0#080027E62A64[64F30F9D4A84D1AE116442CD5DA9708E306AD70133809009A1FE9CB92A57A66A\r',
     "key": SDN_KEY, "key_encoding": "hex",
     "expect": {"token": "NULL", "encrypted": True, "extended": [["I", "Hello"]], "ts": "2015-06-29T13:57:05+00:00"}},
    {"source": "sdn", "kind": "sia", "frame": '\n7C37006b"SIA-DCS"0000RC0FFDL1234#080027E62A64[#080027E62A64|NHB0003][X115000][X115000][X115000]_13:53:11,06-22-2015\r',
     "expect": {"token": "SIA-DCS", "codes": ["HB"], "extended": [["X", "115000"]] * 3}},
    {"source": "sdn", "kind": "cid", "frame": '\nB0AC0027"ADM-CID"0001L0#7099[#7099|1628 01 000]\r',
     "expect": {"token": "ADM-CID", "account": "7099", "codes": ["1628"]}},
    {"source": "sdn", "kind": "sia", "frame": '\n9B6D0059"SIA-DCS"0000RC0FFDL1234#080027E62A64[#080027E62A64|NHB0003][E115000]_14:25:17,06-22-2015\r',
     "expect": {"token": "SIA-DCS", "codes": ["HB"], "extended": [["E", "115000"]]}},
    {"source": "sdn", "kind": "sia", "frame": '\n7ea80059"SIA-DCS"0000Rc0ffdL1234#080027E62A64[#080027E62A64|NHB0003][E115000]_09:00:13,06-23-2015\r',
     "expect": {"token": "SIA-DCS", "receiver": "Rc0ffd", "codes": ["HB"]}},
    {"source": "sdn", "kind": "sia", "frame": "\n953a004c\"SIA-DCS\"0001L0#7878[#7878|Nri01^TOTAL^/LX901^centrale d'alarme JA-106K(R)^]\r",
     "expect": {"token": "SIA-DCS", "account": "7878", "codes": ["LX"], "ts": None}},
    {"source": "sdn", "kind": "sia", "frame": '\nE88800a7"*SIA-DCS"0000RC0FFDL1234#080027E62A64[A054F111518361720BAB126501C6D994CD9151D2C84881C0FEA933A0790F49A9236EBD45F2AED32FAA252EB1AA18FC3CDEDE2452F33185E5931D31308D9B9882\r',
     "key": SDN_KEY, "key_encoding": "hex",
     "expect": {"token": "SIA-DCS", "encrypted": True, "codes": ["HB"], "ts": "2015-06-22T15:12:40+00:00"}},
    {"source": "sdn", "kind": "sia", "frame": '\na60a00a7"*SIA-DCS"0000Rc0ffdL1234#080027E62A64[1636385bf3ee2cf761f578f5b57eea422ca7601e0823c89d6f19feadf690104690e105e61d3989316bcb26df482a42dc3b4b3b0e9c40da4d3642e7d72cc5ce95\r',
     "key": SDN_KEY, "key_encoding": "hex",
     "expect": {"token": "SIA-DCS", "encrypted": True, "codes": ["HB"], "ts": "2015-06-22T15:05:02+00:00"}},
    {"source": "sdn", "kind": "reply", "frame": '\nFE8F0055"RSP"0045RC0FFDL1234#080027E62A64[#080027E62A64|NHB0003][X115000]_15:15:25,06-22-2015\r',
     "expect": {"token": "RSP", "seq": "0045"}},
    {"source": "sdn", "kind": "reply", "frame": '\n80d70055"RSP"0045Rc0ffdL1234#080027E62A64[#080027E62A64|NHB0003][X115000]_15:20:06,06-22-2015\r',
     "expect": {"token": "RSP", "seq": "0045"}},
    {"source": "sdn", "kind": "reply", "frame": '\nbf6b00a3"*RSP"0045Rc0ffdL1234#080027E62A64[114be0aee403a1137690aea179b6c2d99f458d39cad3b929baaf8d30527e064f33dd518153b24d8a101442f90076cf7eb2ef324b91c6f80ca0db2a98a79e46be\r',
     "key": SDN_KEY, "key_encoding": "hex",
     "expect": {"token": "RSP", "encrypted": True, "plain": "#080027E62A64|NHB0003][X115000]_15:33:28,06-22-2015"}},
    {"source": "sdn", "kind": "reply", "frame": '\n31DF00a3"*RSP"0045RC0FFDL1234#080027E62A64[19FCB2E3728C1FC31FEC939DC94ED87E6E1A812499644D92F46DB3D17C73A9305CA2C859F0AC37EF4C3DD3EB3930D6F7E6A2F6F3E016DEA5EF4766F079CA014D\r',
     "key": SDN_KEY, "key_encoding": "hex",
     "expect": {"token": "RSP", "encrypted": True}},
    {"source": "sdn", "kind": "reply", "frame": '\n1f200023"DUH"0045Rc0ffdL1234#080027E62A64[]\r', "expect": {"token": "DUH", "seq": "0045"}},
    {"source": "sdn", "kind": "reply", "frame": '\n14140023"DUH"0045RC0FFDL1234#080027E62A64[]\r', "expect": {"token": "DUH"}},
    # --- pysiaalarm: the two encrypted frames whose length is right (key not published: the
    # test checks framing and that a wrong key is a decrypt failure); its *NULL with the key.
    {"source": "pysia", "kind": "cid", "frame": '\nD0850078"*ADM-CID"6879R0L0#123F[64F7ADD9BA9377DBF2C014BC709329BEEE345B5F20C60B7EB9D2C6B8C222666B13D0B4A114B448B0AC555FCC658DB6EE\r',
     "expect": {"token": "ADM-CID", "encrypted": True, "account": "123F", "receiver": "R0"}},
    {"source": "pysia", "kind": "null", "frame": '\n76D80055"*NULL"0000R0L0#AAAB[B4BC8B40D0E6D959D6BEA78E88CC0B2155741A3C44FBB96D476A3E557CAD64D9\r',
     "key": "AAAAAAAAAAAAAAAA", "key_encoding": "text",
     "expect": {"token": "NULL", "encrypted": True, "account": "AAAB", "ts": "2020-07-05T18:24:52+00:00"}},
    # --- fioletoven/dc09
    {"source": "fio", "kind": "sia", "frame": '\nF4D20029"SIA-DCS"0001RF3L77#1234[#1234|NRR|Atest]\r',
     "expect": {"token": "SIA-DCS", "receiver": "RF3", "prefix": "L77", "codes": ["RR"]}},
    {"source": "fio", "kind": "sia", "frame": '\n96ED0016"SIA-DCS"0001L0#1234[]\r',
     "expect": {"token": "SIA-DCS", "account": "1234", "codes": None}},
    {"source": "fio", "kind": "reply", "frame": '\nE4410025"NAK"0000R0L0A0[]_16:20:01,09-24-2025\r',
     "expect": {"token": "NAK"}},
    # --- ioBroker.sia
    {"source": "iob", "kind": "sia", "frame": '\nD3A10095"SIA-DCS"0005L0#12345[#12345|Nri0000pi0006da10-25-18ti14:37:53UT0000^$PR,SCOMPARSA          ,Centrale,Zona1,ROtTe.6MyLittlPoint^]_12:37:53,10-25-2018\r',
     "expect": {"token": "SIA-DCS", "account": "12345", "codes": ["UT"], "ts": "2018-10-25T12:37:53+00:00"}},
    {"source": "iob", "kind": "sia", "frame": '\nAEAE0137"*SIA-DCS"0018L0#12345[4cea0b8eb4752a51724c2c55f3801a6e35cb21d25e014290c29995e7cdbbb4659747c1e185c3627db922513d6d5cbb33440d09eefa204e96d62c9c9fc6ffaa5abeccfce859dd540f74cba79c04a048a9b597c12b027f6366a3817d1dd6e26e2019d33075a67ab4a74221f57450070a7f0de890d087c64e76db6893c192ef5e16762ef9934bbfc516d041ad71c47d4dd0\r',
     "key": "0123456789ABCDEF", "key_encoding": "text",
     "expect": {"token": "SIA-DCS", "encrypted": True, "codes": ["UT"]}},
    # --- other public receivers' code and docs
    {"source": "misc", "kind": "cid", "frame": '\nF92F0043"ADM-CID"0020R7896L7896#3456[#3456|1407 00 001]_17:01:14,07-26-2024\r',
     "expect": {"token": "ADM-CID", "receiver": "R7896", "prefix": "L7896", "codes": ["1407"]}},
    {"source": "misc", "kind": "null", "frame": '\nD730002F"NULL"0000R7896L7896#3456[]_17:01:26,07-26-2024\r',
     "expect": {"token": "NULL", "account": "3456"}},
    {"source": "misc", "kind": "cid", "frame": '\n9EC40027"ADM-CID"0001L0#1002[#1002|1602 00 001]\r',
     "expect": {"token": "ADM-CID", "codes": ["1602"]}},
    {"source": "misc", "kind": "cid", "frame": '\n75140027"ADM-CID"0001L0#1002[#1002|3354 00 004]\r',
     "expect": {"token": "ADM-CID", "codes": ["3354"]}},
]  # fmt: skip

# pysiaalarm's frames: right CRC (or none), wrong length field. The receiver NAKs them as they
# are; with length and CRC recomputed, the content must parse to ``codes``.
BODIES: list[dict[str, Any]] = [
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"7960L0#123456[#123456|Nri1CL0^VX FRONTE ^]_22:40:48,04-11-2021', "codes": ["CL"]},
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"8070L0#123456[#123456|Nri0KR1^TAST. 001 ^]_13:49:12,04-13-2021', "codes": ["KR"]},
    {"source": "pysia", "kind": "cid", "body": '"ADM-CID"9876R579BDFL789ABC#12345A[#12345A|1110 00 129]_14:12:04,09-25-2011', "codes": ["1110"]},
    {"source": "pysia", "kind": "cid", "body": '"ADM-CID"0247R4F39L4F39#4F39[#4F39|3401 01 057]', "codes": ["3401"]},
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"6002L0#AAA[|Nri2/JC12]_12:58:23,09-15-2021', "codes": ["JC"]},
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"6002L0#AAA[|Nri1/CL501][M0026B9E4268B]_14:12:04,09-25-2019', "codes": ["CL"]},
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"6002L0#1111[|Nri1/RP000][KAAAAAAAAAAAAAAAA]_14:12:04,09-25-2019', "codes": ["RP"]},
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"0004L0#1111[#1111|Nri1/PA501][X006E07.7777777][Y49N06.6666666]_20:45:46,04-22-2021', "codes": ["PA"]},
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"6002L0#AAA[|Nri1/CL501]_14:12:04,09-25-2019', "codes": ["CL"]},
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"4738R0001L0001[#006969|Nri04/OP001NM]', "codes": ["OP"]},
    {"source": "pysia", "kind": "sia", "body": '"SIA-DCS"5268L0#AAA[Nri1/WA000]_08:40:47,07-08-2020', "codes": ["WA"]},
    {"source": "misc", "kind": "cid", "body": '"ADM-CID"0043L0#5101[#5101|1401 01 003]_18:27:41,09-21-2026', "codes": ["1401"]},
]  # fmt: skip

# The golden replies of the protocol notes.
GOLDEN_NAK = b'\n3C830025"NAK"0000R0L0A0[]_16:09:09,04-14-2015\r'
GOLDEN_ACK_REQUEST = b'\n8a590038"NULL"0000Rc0ffdL1234#080027E62A64[]_15:50:24,06-22-2015\r'
GOLDEN_ACK = b'\n01FC0037"ACK"0000Rc0ffdL1234#080027E62A64[]_12:10:40,06-22-2015\r'
