// SPDX-License-Identifier: MIT
// The ERC-20 token of kms-eth's end-to-end tests (tests/src/tokens.rs compiles and deploys
// it on anvil): OpenZeppelin's ERC-20 with EIP-2612 permits, and increaseAllowance, which
// OpenZeppelin 5 dropped but deployed tokens (USDC among them) still have, so that the
// policy's handling of it can be tested against real code.
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

contract TestToken is ERC20, ERC20Permit {
    /// Mints `amount` (in the smallest unit; 18 decimals) to `holder`. The permit domain
    /// is named as the token, version "1".
    constructor(address holder, uint256 amount) ERC20("kms-eth Test Token", "KTT") ERC20Permit("kms-eth Test Token") {
        _mint(holder, amount);
    }

    /// Raises the caller's allowance for `spender` by `addedValue`.
    function increaseAllowance(address spender, uint256 addedValue) external returns (bool) {
        address owner = _msgSender();
        _approve(owner, spender, allowance(owner, spender) + addedValue);
        return true;
    }
}
