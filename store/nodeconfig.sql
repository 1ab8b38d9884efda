-- name: ListFirewallRules :many
SELECT * FROM firewall_rules
WHERE organization_id = @organization_id AND provision_id = @provision_id
ORDER BY created_at, id;

-- name: CountFirewallRules :one
SELECT count(*) FROM firewall_rules WHERE organization_id = @organization_id AND provision_id = @provision_id;

-- name: InsertFirewallRule :one
INSERT INTO firewall_rules (organization_id, provision_id, protocol, port_low, port_high, source_ips, description)
VALUES (@organization_id, @provision_id, @protocol, @port_low, @port_high, @source_ips, @description)
RETURNING *;

-- name: SeedFirewallRules :exec
-- A new request's rules: SSH and ping from anywhere.
INSERT INTO firewall_rules (organization_id, provision_id, protocol, port_low, port_high, source_ips, description, created_at)
VALUES (@organization_id, @provision_id, 'tcp', 22, 22, ARRAY['0.0.0.0/0', '::/0'], 'ssh', now()),
       (@organization_id, @provision_id, 'icmp', 0, 0, ARRAY['0.0.0.0/0', '::/0'], 'ping', now() + interval '1 microsecond');

-- name: DeleteFirewallRule :one
DELETE FROM firewall_rules WHERE organization_id = @organization_id AND provision_id = @provision_id AND id = @id
RETURNING *;

-- name: DeleteFirewallRuleMatching :one
DELETE FROM firewall_rules
WHERE organization_id = @organization_id AND provision_id = @provision_id
  AND protocol = @protocol AND port_low = @port_low AND port_high = @port_high AND source_ips = @source_ips
RETURNING *;

-- name: SetProvisionInstanceType :exec
UPDATE provision_requests SET instance_type = @instance_type, updated_at = now()
WHERE organization_id = @organization_id AND id = @id;

-- name: SetRunAutoApply :exec
UPDATE provision_runs SET auto_apply = true WHERE organization_id = @organization_id AND id = @id;

-- name: SetNodeDesiredSize :exec
-- A resize of the node is pending (from its request, or checked again by
-- its apply): placements count the smaller size until the apply. Asking
-- for the node's own type again ends it.
UPDATE nodes SET
    desired_instance_type = CASE WHEN instance_type = @instance_type::text THEN NULL ELSE @instance_type::text END,
    desired_vcpu = CASE WHEN instance_type = @instance_type::text THEN NULL ELSE @vcpu::integer END,
    desired_memory_mb = CASE WHEN instance_type = @instance_type::text THEN NULL ELSE @memory_mb::integer END,
    desired_disk_gb = CASE WHEN instance_type = @instance_type::text THEN NULL ELSE @disk_gb::integer END,
    updated_at = now()
WHERE organization_id = @organization_id AND id = @id;
