"""What tests run against, one of each; test modules import from here, never from
each other.

Real parts:
- etcd.py          one etcd member on loopback (`running_etcd`, `new_etcd`), a store Cache
- etcd_cluster.py  a multi-member etcd cluster for failover
- manager.py       the real manager in-process (`running_manager`) or as a process
                   (`start_manager`), and `expect_error` for its gRPC answers
- agent_process.py a real agent process (unique bridge, subnet, cgroups)
- cluster_agent.py that agent joined to a cluster by `pyswarm join`
- registry_process.py, static_registry.py   a real docker-registry; a scripted one
- lab.py           the one-machine lab for e2e tests
- supervisor.py    helpers for the real supervisor (its fixture: integration/conftest.py)

Fakes that speak the real protocols, for the side a test is not about:
- fake_manager.py  a Dispatcher + NodeCA server for a real agent
- fake_agent.py    Dispatcher clients for a real manager; fleet.py, a fleet of them

The pytest fixtures that wrap these live in the conftest.py files.
"""
