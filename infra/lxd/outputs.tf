output "servers" {
  description = "Server name => its IPv4 address, image and generation."
  value = {
    for name, server in lxd_container.server : name => {
      address    = server.ipv4_address
      image      = var.servers[name].image
      generation = var.servers[name].generation
    }
  }
}
