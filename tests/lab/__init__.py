"""The test lab: network namespaces joined by veth pairs, built and removed by the tests.

Rules, as in ../shared/LAB.md: nothing here touches the host's own interfaces or routes
(both veth ends are created directly inside lab namespaces), and every address a test may
send to comes from :mod:`tests.lab.addresses`.
"""
