"""Docker Swarm: the same stack files as Swarm services (issue 15).

So far the pure half: `convert.convert_stack` turns a StackSpec into the engine API requests
`docker stack deploy` would send (networks, secrets, configs, services), and `files` reads the
secret and config files it needs, bounded. The backend that sends them comes with the Backend
seam (issue 14). docs/swarm.md has what maps to what and what cannot apply.
"""
