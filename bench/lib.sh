# lib.sh holds what the scripts in bench/ share; they source it.

# wait_port PORT returns once 127.0.0.1:PORT accepts a connection, or fails
# after 60 s.
wait_port() {
	local port=$1
	for _ in $(seq 1 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# self_signed DIR DOMAIN writes DIR/cert.pem and DIR/key.pem: a self-signed
# ECDSA P-256 certificate for DOMAIN, valid 30 days, that the load verifies
# with --ca DIR/cert.pem.
self_signed() {
	local dir=$1 domain=$2
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-subj "/CN=$domain" -addext "subjectAltName=DNS:$domain" \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
}
